"""Creates the demo practice and its logins; idempotent, prints the logins."""

from datetime import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from checklist import services
from checklist.audit import audit_context
from checklist.models import Board, Discipline, Membership, Practice, Weekday

DEMO_PRACTICE = "Demo Practice"
DEMO_PASSWORD = "demo-Passw0rd!"  # printed for the demo; never used outside `make run`
DEMO_BOARD = {
    "name": "Interdisciplinary tumour board",
    "weekday": Weekday.WEDNESDAY,
    "starts_at": time(16, 0),
    "disciplines": [
        Discipline.MEDICAL_ONCOLOGY,
        Discipline.RADIOLOGY,
        Discipline.PATHOLOGY,
        Discipline.RADIATION_ONCOLOGY,
        Discipline.SURGERY,
    ],
}
DEMO_USERS = [
    ("demo.physician", "Dana", "Demo", Membership.PHYSICIAN),
    ("demo.admin", "Alex", "Admin", Membership.PRACTICE_ADMIN),
]


def load_demo() -> Practice:
    user_model = get_user_model()
    with transaction.atomic(), audit_context(path="manage.py load_demo"):
        practice = Practice.objects.filter(name=DEMO_PRACTICE).first()
        if practice is None:
            practice = services.practice_create(name=DEMO_PRACTICE)
            # The demo physician logs in with the password alone; the demo admin sets up the
            # second factor at the first login, as every admin must.
            practice = services.practice_set_second_factor(practice=practice, for_physicians=False)
        services.catalogue_seed(practice=practice)
        for username, first, last, role in DEMO_USERS:
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            Membership.objects.get_or_create(
                practice=practice, user=user, defaults={"role": role, "active": True}
            )
        # A weekly board with its next meetings, so that registering a note for a meeting
        # and the meeting mode can be tried at once; meetings already there are kept.
        board = Board.objects.for_practice(practice).filter(name=DEMO_BOARD["name"]).first()
        if board is None:
            board = services.board_save(practice=practice, data=dict(DEMO_BOARD))
        if board.active:
            services.meetings_create_ahead(board=board, acting_user=None)
    return practice


class Command(BaseCommand):
    help = "Create the demo practice with a demo physician and a demo practice admin."

    def handle(self, *args: Any, **options: Any) -> None:
        practice = load_demo()
        self.stdout.write(f"Demo practice: {practice.name}")
        self.stdout.write(
            f"  board: {DEMO_BOARD['name']}, with its next meetings (Tumour boards page)"
        )
        for username, _first, _last, role in DEMO_USERS:
            self.stdout.write(f"  {role:15} login: {username}  password: {DEMO_PASSWORD}")
        physicians = (
            "asks its physicians for one too"
            if practice.second_factor_for_physicians
            else "asks none of its physicians"
        )
        self.stdout.write(
            "  The demo admin sets up a second factor at the first login: an authenticator app"
            f" (the key is shown as text too). The demo practice {physicians} (Accounts page)."
        )
