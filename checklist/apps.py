from django.apps import AppConfig


class ChecklistConfig(AppConfig):
    name = "checklist"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Not at the top: audit imports the models, which Django loads only after this
        # module (the app registry is not ready when apps.py is imported).
        from checklist import audit, lockout, sessions

        audit.connect_signals()
        sessions.connect_signals()
        lockout.register_checks()
