"""The every-URL table: each protected URL name with a builder of the kwargs that name an
object of practice A. tests/test_every_url.py fails for a URL pattern missing here, and
tests/test_hostile_input.py walks the table with generated input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from django.urls import reverse
from django.utils import timezone

from checklist.models import AgendaItem, Case, Category, CodeMapping, Membership, Tumour
from checklist.services import attendance_add, catalogue_draft_create, fhir_preview_save
from tests.factories import (
    days_from_today,
    fhir_minimal_preview,
    make_board,
    make_note,
    register_case,
)

PUBLIC = {"login", "logout", "healthz", "ping", "set_password", "set_language"}


def _case(practice_a, alice) -> dict[str, Any]:
    return {"pk": Case.objects.create(practice=practice_a, label="A-1", **Case.MINIMAL).pk}


def _membership(practice_a, alice) -> dict[str, Any]:
    return {"pk": Membership.objects.get(user=alice).pk}


def _row(kind: str, factory: Callable[[Case], Any]) -> Callable[..., dict[str, Any]]:
    def build(practice_a, alice) -> dict[str, Any]:
        case = Case.objects.create(practice=practice_a, label=f"A-{kind}", **Case.MINIMAL)
        return {"pk": case.pk, "kind": kind, "row_pk": factory(case).pk}

    return build


def _tumour(case: Case) -> Any:
    return Tumour.objects.create(
        case=case,
        practice_id=case.practice_id,
        oncotree_code="IDC",
        oncotree_name="Breast Invasive Ductal Carcinoma",
        oncotree_release="x",
        laterality="left",
    )


def _case_kind(kind: str) -> Callable[..., dict[str, Any]]:
    def build(practice_a, alice) -> dict[str, Any]:
        return {**_case(practice_a, alice), "kind": kind}

    return build


def _case_category(practice_a, alice) -> dict[str, Any]:
    category = Category.objects.filter(practice=practice_a).first()
    return {**_case(practice_a, alice), "category_pk": category.pk}  # type: ignore[union-attr]


def _catalogue_version(practice_a, alice) -> dict[str, Any]:
    # A number that exists only in practice A (B has version 1 too: a draft 2 exists only in A).
    draft = catalogue_draft_create(practice=practice_a)
    return {"number": draft.number}


def _catalogue_category(practice_a, alice) -> dict[str, Any]:
    draft = catalogue_draft_create(practice=practice_a)
    return {"number": draft.number, "category_pk": draft.categories.first().pk}  # type: ignore[union-attr]


def _catalogue_category_action(practice_a, alice) -> dict[str, Any]:
    return {**_catalogue_category(practice_a, alice), "action": "up"}


def _fhir_preview(practice_a, alice) -> dict[str, Any]:
    preview = fhir_preview_save(
        user=alice, practice=practice_a, sha256="0" * 64, entries=1, data=fhir_minimal_preview()
    )
    return {"pk": preview.pk}


def _code_mapping(practice_a, alice) -> dict[str, Any]:
    mapping = CodeMapping.objects.create(
        practice=practice_a,
        source_system="http://snomed.info/sct",
        source_code="254637007",
        target_system="oncotree",
        target_code="NSCLC",
        mapped_by=alice,
        mapped_at=timezone.now(),
    )
    return {"pk": mapping.pk}


def _note(practice_a, alice) -> dict[str, Any]:
    case = Case.objects.create(practice=practice_a, label="A-note", **Case.MINIMAL)
    return {"pk": make_note(case, alice).note_id}


def _note_version(practice_a, alice) -> dict[str, Any]:
    return {**_note(practice_a, alice), "number": 1}


def _board(practice_a, alice) -> dict[str, Any]:
    return {"pk": make_board(practice_a, name="A board").pk}


def _agenda_item(practice_a, alice) -> AgendaItem:
    board = make_board(practice_a, name="A agenda board")
    case = Case.objects.create(practice=practice_a, label="A-agenda", **Case.MINIMAL)
    day = date.fromisoformat(days_from_today(7))
    register_case(case, alice, board, day)
    return AgendaItem.objects.get(case=case)


def _meeting(practice_a, alice) -> dict[str, Any]:
    return {"pk": _agenda_item(practice_a, alice).meeting_id}


def _meeting_item(practice_a, alice) -> dict[str, Any]:
    item = _agenda_item(practice_a, alice)
    return {"pk": item.meeting_id, "item_pk": item.pk}


def _meeting_attendance(practice_a, alice) -> dict[str, Any]:
    item = _agenda_item(practice_a, alice)
    attendance = attendance_add(
        meeting=item.meeting, name="Dr. A", discipline="radiology", acting_user=alice
    )
    return {"pk": item.meeting_id, "attendance_pk": attendance.pk}


# name -> builder of kwargs naming an object of practice A, or None when the URL names none.
PROTECTED: dict[str, Callable[..., dict[str, Any]] | None] = {
    "home": None,
    "case_list": None,
    "practice_switch": None,
    "account_list": None,
    "account_create": None,
    "account_edit": _membership,
    "account_link": _membership,
    "account_unlock": _membership,
    "my_account": None,
    "otp_verify": None,
    "otp_enrol": None,
    "reauth": None,
    "practice_second_factor": None,
    "account_second_factor_remove": _membership,
    "session_keep_alive": None,
    "case_create": None,
    "case_detail": _case,
    "case_edit": _case,
    "case_metastasis_status": _case,
    "case_prior_therapy": _case,
    "case_row_create": _case_kind("tumour"),
    "case_row_edit": _row("tumour", _tumour),
    "case_row_delete": _row("tumour", _tumour),
    "oncotree_search": None,
    "checklist": _case,
    "checklist_item": _case_category,
    "checklist_move": _case,
    "catalogue_list": None,
    "catalogue_draft": None,
    "catalogue_diff": None,
    "catalogue_version": _catalogue_version,
    "catalogue_category_new": _catalogue_version,
    "catalogue_category": _catalogue_category,
    "catalogue_category_action": _catalogue_category_action,
    "catalogue_merge": _catalogue_version,
    "catalogue_publish": _catalogue_version,
    "catalogue_discard": _catalogue_version,
    "note_create": _case,
    "case_immune_not_assessed": _case,
    "note_list": None,
    "note_detail": _note,
    "note_edit": _note,
    "note_ready": _note,
    "note_sign": _note,
    "note_amend": _note,
    "outcome_create": _note,
    "note_print": _note_version,
    "note_pdf": _note_version,
    "note_text": _note_version,
    "case_history": _case,
    "case_fhir_export": _case,
    "board_list": None,
    "board_create": None,
    "board_detail": _board,
    "board_edit": _board,
    "meeting_create": _board,
    "meeting_detail": _meeting,
    "meeting_shift": _meeting,
    "meeting_registration": _meeting,
    "agenda_item_move": _meeting_item,
    "meeting_agenda_pdf": _meeting,
    "meeting_summary_pdf": _meeting,
    "meeting_mode": _meeting,
    "attendance_add": _meeting,
    "attendance_remove": _meeting_attendance,
    "agenda_item_decision": _meeting_item,
    "agenda_item_status": _meeting_item,
    "audit_trail": None,
    "audit_export": None,
    "audit_reports": None,
    "audit_chain": None,
    "fhir_import": None,
    "fhir_preview": _fhir_preview,
    "code_mapping_list": None,
    "code_mapping_edit": _code_mapping,
    "code_mapping_delete": _code_mapping,
}


def url_of(name: str, practice_a: Any, alice: Any) -> str:
    """The URL of `name`, naming a new object of practice A where the pattern names one."""
    builder = PROTECTED[name]
    return reverse(name, kwargs=builder(practice_a, alice) if builder else None)
