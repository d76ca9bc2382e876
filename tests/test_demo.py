from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from checklist.models import Board, BoardMeeting, Code, Membership, Practice


def test_the_demo_loader_is_idempotent(db, capsys):
    call_command("load_demo")
    call_command("load_demo")
    assert Practice.objects.filter(name="Demo Practice").count() == 1
    assert Membership.objects.count() == 2
    assert get_user_model().objects.count() == 2
    out = capsys.readouterr().out
    assert "demo.physician" in out and "demo.admin" in out and "password" in out
    # One board with its next eight meetings, from today on, not doubled by the second run.
    board = Board.objects.get(practice__name="Demo Practice")
    days = list(BoardMeeting.objects.filter(board=board).values_list("date", flat=True))
    assert len(days) == 8 and min(days) >= timezone.localdate()


def test_the_code_list_loader_is_idempotent(db):
    call_command("load_codelists")
    first = Code.objects.count()
    call_command("load_codelists")
    assert Code.objects.count() == first > 1000
    breast = Code.objects.get(system="oncotree", code="BREAST")
    assert breast.selectable is False  # a tissue, not a diagnosis
    assert Code.objects.get(system="oncotree", code="IDC").selectable
    assert Code.objects.get(system="obds:fm_lokalisation", code="LYM").display == (
        "Non-regional lymph nodes"
    )
    assert not Code.objects.filter(system="mii:therapie-typ", code="KW").exists()
