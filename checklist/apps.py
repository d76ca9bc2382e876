from django.apps import AppConfig


class ChecklistConfig(AppConfig):
    name = "checklist"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from checklist import audit

        audit.connect_signals()
