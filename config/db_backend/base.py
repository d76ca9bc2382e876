"""PostgreSQL backend that starts the embedded server before its first connection."""

from typing import Any

from django.db.backends.postgresql import base

from config import embedded_db


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        # Test databases are created by Django itself (through the "postgres" database).
        name = str(self.settings_dict.get("NAME") or "postgres")
        created_by_django = name == "postgres" or name.startswith("test_")
        params.update(embedded_db.connection_params(None if created_by_django else name))
        # The serving role connects as itself (settings `DJANGO_DB_ROLE`).
        params["user"] = self.settings_dict.get("USER") or params["user"]
        return params
