"""Creates the owner and serving roles and their privileges (checklist/db_roles.py)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from checklist import db_roles


class Command(BaseCommand):
    help = "Create the owner and serving database roles and grant the serving role its rights."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", default=db_roles.OWNER)
        parser.add_argument("--app", default=db_roles.APP)

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.cursor() as cursor:
            moved = db_roles.apply(cursor, owner=options["owner"], app=options["app"])
        self.stdout.write(
            f"roles ready: {options['owner']} owns the schema ({moved} object(s) handed over),"
            f" {options['app']} serves (no ownership, read-only trail)"
        )
