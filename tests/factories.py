"""Builders the tests share: users and logged-in clients, rows posted as the browser posts
them, cases seeded with many rows, board notes. Test modules (conftest.py too) import from
here and from tests/urls_table.py, never from each other.

Dates a form compares with today (a board date, an outcome's date) are built from
`timezone.localdate()`, so the tests pass on any day, including under the shifted clock of
the `clock` fixture.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from checklist.models import (
    AdverseEvent,
    Biomarker,
    Board,
    BoardMeeting,
    BoardNoteVersion,
    Case,
    FamilyHistory,
    GenomicVariant,
    ImmuneFinding,
    Lifestyle,
    Membership,
    Metastasis,
    PerformanceStatus,
    Practice,
    Prophylaxis,
    StagingRecord,
    TherapyLine,
    Tumour,
    Vaccination,
)
from checklist.second_factor import REAUTH_SESSION_KEY
from checklist.services import board_save, note_create, note_sign

PASSWORD = "correct-horse-Battery-9"


# --- users ------------------------------------------------------------------------------


def make_user(username: str, practice: Practice, role: str, **extra: Any) -> Any:
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, first_name=username.title(), **extra
    )
    Membership.objects.create(practice=practice, user=user, role=role)
    return user


def logged_in(user: Any, *, verified: bool = True) -> Client:
    """A client logged in as `user`; `verified` (the default) also passes the second factor,
    as after the code step, with the user's test authenticator (`otp_device`)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    if verified:
        verify_session(client, user)
    return client


def otp_device(user: Any) -> TOTPDevice:
    """The user's confirmed authenticator for tests; its codes come from `totp_code`."""
    device, _ = TOTPDevice.objects.get_or_create(
        user=user, name="test", defaults={"confirmed": True}
    )
    return device


def totp_code(device: TOTPDevice) -> str:
    """The device's current code. The device accepts each time step once and waits longer
    after each wrong code: forget both, so a test may log in twice within 30 seconds and give
    the right code right after a wrong one."""
    TOTPDevice.objects.filter(pk=device.pk).update(
        last_t=-1, throttling_failure_count=0, throttling_failure_timestamp=None
    )
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def verify_session(client: Client, user: Any) -> None:
    """Marks the client's session as having passed the second factor, as `django_otp.login`
    does after a correct code."""
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = otp_device(user).persistent_id
    # The code step counts as a re-authentication for exports and account management.
    session[REAUTH_SESSION_KEY] = time.time()
    session.save()


# --- dates ------------------------------------------------------------------------------


def days_from_today(days: int) -> str:
    """An ISO date `days` after today (before it when negative), as a form field takes it."""
    return (timezone.localdate() + timedelta(days=days)).isoformat()


# --- the case record, through the views ---------------------------------------------------


def post_row(client: Client, case: Case, kind: str, data: dict[str, Any], row: Any = None) -> Any:
    """Posts a row form with the case's current version, as the browser would."""
    case.refresh_from_db()
    url = f"/cases/{case.pk}/{kind}/{row.pk}/" if row else f"/cases/{case.pk}/{kind}/new/"
    return client.post(url, {**data, "expected_version": case.version})


def set_metastasis_status(client: Client, case: Case, status: str, **extra: Any) -> Any:
    """Posts the metastasis status with the case's current version, as the browser would."""
    case.refresh_from_db()
    return client.post(
        f"/cases/{case.pk}/metastasis-status/",
        {"metastasis_status": status, "expected_version": case.version, **extra},
    )


# A first systemic line for advanced disease, hormone therapy, ended by progression.
LINE = {
    "kind": "systemic",
    "number": 1,
    "position": "first_advanced",
    "types": ["HO"],
    "regimen": "Letrozole",
    "started_on": "2021-01-15",
    "ended_on": "2022-03-01",
    "end_reason": "P",
}

# A clinical TNM staging; the audit tests change its T category.
STAGING = {
    "staged_on": "2024-01-10",
    "kind": "clinical",
    "system": "uicc_tnm",
    "tnm_edition": "8",
    "t_prefix": "c",
    "t_category": "2",
    "n_prefix": "c",
    "n_category": "0",
    "m_prefix": "c",
    "m_category": "0",
}


def record_stage_change(client: Client, case: Case) -> Case:
    """The physician records the stage of the case, changes its T category from 2 to 3, and
    views the case."""
    post_row(client, case, "staging", STAGING)
    record = case.staging_records.get()
    post_row(client, case, "staging", {**STAGING, "t_category": "3"}, row=record)
    client.get(f"/cases/{case.pk}/")
    return case


def audit_rows(html: str) -> list[str]:
    """The rows of an audit-event table (the trail, a case's history), one string each. Look
    for a user name or an operation in the rows: the trail's filter form lists every user of
    the practice and the history lists the case's own creation."""
    return re.findall(r'<tr data-op="[^"]*">.*?</tr>', html, flags=re.S)


# --- many rows at once (query counts, benchmarks) -----------------------------------------


def seed_cases(practice: Practice, n: int) -> None:
    cases = Case.objects.bulk_create(
        [Case(practice=practice, label=f"S-{i:05d}", **Case.MINIMAL) for i in range(n)]
    )
    Tumour.objects.bulk_create(
        [
            Tumour(
                case=c,
                practice=practice,
                oncotree_code="IDC",
                oncotree_name="IDC",
                oncotree_release="x",
                laterality="left",
            )
            for c in cases
        ]
    )


def seed_rows(case: Case, n: int) -> None:
    p = case.practice_id
    day = date(2020, 1, 1)
    Tumour.objects.bulk_create(
        [
            Tumour(
                case=case,
                practice_id=p,
                oncotree_code="IDC",
                oncotree_name="IDC",
                oncotree_release="x",
                laterality="left",
                diagnosed_on=day,
            )
            for _ in range(n)
        ]
    )
    StagingRecord.objects.bulk_create(
        [
            StagingRecord(
                case=case,
                practice_id=p,
                staged_on=day + timedelta(days=i),
                kind="clinical",
                system="uicc_tnm",
                tnm_edition="8",
                t_prefix="c",
                t_category="2",
            )
            for i in range(n)
        ]
    )
    Biomarker.objects.bulk_create(
        [
            Biomarker(case=case, practice_id=p, name=f"M{i}", kind="somatic", status="pending")
            for i in range(n)
        ]
    )
    Metastasis.objects.bulk_create(
        [
            Metastasis(case=case, practice_id=p, site="OSS", detected_on=day, timing="synchronous")
            for _ in range(n)
        ]
    )
    lines = TherapyLine.objects.bulk_create(
        [
            TherapyLine(
                case=case,
                practice_id=p,
                number=i + 1,
                types=["CH"],
                position="A",
                started_on=day,
            )
            for i in range(n)
        ]
    )
    AdverseEvent.objects.bulk_create(
        [
            AdverseEvent(
                case=case,
                practice_id=p,
                line=line,
                term="nausea",
                ctcae_version="5.0",
                grade="2",
                onset_on=day,
            )
            for line in lines
            for _ in range(5)
        ]
    )
    PerformanceStatus.objects.bulk_create(
        [PerformanceStatus(case=case, practice_id=p, assessed_on=day, ecog=1) for _ in range(n)]
    )
    ImmuneFinding.objects.bulk_create(
        [
            ImmuneFinding(case=case, practice_id=p, assessed_on=day + timedelta(days=i))
            for i in range(min(n, 30))
        ]
    )
    Lifestyle.objects.bulk_create(
        [
            Lifestyle(case=case, practice_id=p, recorded_on=day, smoking="former", pack_years=i)
            for i in range(n)
        ]
    )
    FamilyHistory.objects.bulk_create(
        [
            FamilyHistory(case=case, practice_id=p, degree="first", cancer_type=f"cancer {i}")
            for i in range(n)
        ]
    )
    GenomicVariant.objects.bulk_create(
        [
            GenomicVariant(
                case=case,
                practice_id=p,
                result_kind="variant",
                status="result",
                gene="EGFR",
                hgvs_c=f"c.{i + 1}A>G",
                variant_type="snv",
                reported_on=day,
            )
            for i in range(n)
        ]
    )
    Prophylaxis.objects.bulk_create(
        [
            Prophylaxis(case=case, practice_id=p, agent="Aciclovir", kind="antiviral", since=day)
            for _ in range(n)
        ]
    )
    Vaccination.objects.bulk_create(
        [Vaccination(case=case, practice_id=p, vaccine="Influenza", given_on=day) for _ in range(n)]
    )


# --- board notes --------------------------------------------------------------------------


def note_data(**change: Any) -> dict[str, Any]:
    """The new-note form as a physician fills it in, the board four days from today."""
    return {
        "registering_physician": "Dr. Alice",
        "target_board": "Interdisziplinäre Tumorkonferenz",
        "board_type": "postth",
        "board_date": days_from_today(4),
        "question": "Further systemic therapy after progression under line 2?",
        "patient_goals": "Möchte weiter arbeiten; Lebensqualität zuerst.",
        **change,
    }


def make_note(case: Case, user: Any) -> BoardNoteVersion:
    """A draft note with the fewest fields, written by the service (no form, no request)."""
    return note_create(
        case=case,
        acting_user=user,
        data={
            "registering_physician": "x",
            "target_board": "x",
            "board_type": "postth",
            "question": "q",
        },
    )


def make_signable(client: Client, case: Case) -> Case:
    """Records what signing needs: a tumour type, the metastasis status, a prior-therapy
    statement and immune findings stated as not assessed."""
    post_row(client, case, "tumour", {"oncotree": "IDC", "laterality": "left"})
    set_metastasis_status(client, case, "present")
    for path, field in [("prior-therapy", "no_prior_therapy"), ("immune-not-assessed", "value")]:
        case.refresh_from_db()
        client.post(f"/cases/{case.pk}/{path}/", {field: "on", "expected_version": case.version})
    case.refresh_from_db()
    return case


def create_note(client: Client, case: Case, **change: Any) -> int:
    """Creates a note through the form; answers its id."""
    response = client.post(f"/cases/{case.pk}/notes/new/", note_data(**change))
    assert response.status_code == 302, response.content[-3000:]
    return int(response["Location"].strip("/").split("/")[-1])


def sign_note(client: Client, note_pk: int) -> Any:
    """Signs as the confirmation step's form does: with the physician's password, the note's
    revision and the case version shown."""
    version = BoardNoteVersion.objects.filter(note_id=note_pk).order_by("-number").first()
    assert version is not None
    return client.post(
        f"/notes/{note_pk}/sign/",
        {
            "password": PASSWORD,
            "revision": version.revision,
            "case_version": version.note.case.version,
        },
    )


# --- tumour-board meetings ----------------------------------------------------------------


def make_board(practice: Practice, name: str = "Breast board", **extra: Any) -> Board:
    """A board meeting on Wednesdays at 16:00 that expects radiology, pathology and surgery."""
    values: dict[str, Any] = {
        "weekday": 2,
        "starts_at": time_of_day(16, 0),
        "disciplines": ["radiology", "pathology", "surgery"],
        **extra,
    }
    return board_save(practice=practice, data={"name": name, **values})


def register_case(
    case: Case, user: Any, board: Board, day: date, *, retrospective: bool = False
) -> BoardNoteVersion:
    """A note registered for `board` on `day`, written by the service: it goes on the agenda."""
    return note_create(
        case=case,
        acting_user=user,
        data={
            "registering_physician": f"Dr. {user.first_name}",
            "board": board,
            "target_board": board.name,
            "board_type": "postth",
            "board_date": day,
            "board_date_retrospective": retrospective,
            "question": f"Further therapy for {case.label}?",
        },
    )


def make_ready_to_sign(case: Case) -> Case:
    """What signing needs, stated on the case directly: a tumour, metastases present, no
    prior therapy and immune findings not assessed."""
    Tumour.objects.create(
        case=case,
        practice_id=case.practice_id,
        oncotree_code="IDC",
        oncotree_name="Breast Invasive Ductal Carcinoma",
        oncotree_release="x",
        laterality="left",
    )
    Case.objects.filter(pk=case.pk).update(
        metastasis_status="present", no_prior_therapy=True, immune_not_assessed=True
    )
    case.refresh_from_db()
    return case


def seed_meeting(
    practice: Practice, user: Any, n: int, *, day: date | None = None, signed: bool = True
) -> BoardMeeting:
    """A meeting of a new board with `n` cases registered by `user` (a physician), their notes
    signed (snapshots built as at signing) unless `signed` is False."""
    board = make_board(practice, name=f"Board {Board.objects.count() + 1}")
    day = day or timezone.localdate() + timedelta(days=7)
    membership = Membership.objects.get(user=user, practice=practice)
    for i in range(n):
        case = Case.objects.create(
            practice=practice, label=f"M-{board.pk}-{i:03d}", created_by=user, **Case.MINIMAL
        )
        version = register_case(make_ready_to_sign(case), user, board, day)
        if signed:
            note_sign(version=version, acting_membership=membership, language="en")
    return BoardMeeting.objects.get(board=board, date=day)


# --- FHIR bundles -------------------------------------------------------------------------

# CC0 mCODE examples, copied with their source note (tests/data/mcode_examples/SOURCE.txt).
MCODE_EXAMPLES = Path(__file__).resolve().parent / "data" / "mcode_examples"
JENNY_M_TRANSACTION = (
    MCODE_EXAMPLES / "mcode-patient-bundle-jenny-m_transactionBundle_preSTU3-2022-12-16.json"
)
JENNY_M_COLLECTION = MCODE_EXAMPLES / "example" / "Bundle-mcode-patient-bundle-jenny-m.json"
PRIMARY_PROFILE = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"
SECONDARY_PROFILE = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-secondary-cancer-condition"
)


def fhir_bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    """A Bundle of `resources`, each with a urn:uuid fullUrl built from its id."""
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": f"urn:uuid:{r.get('id', i)}", "resource": r}
            for i, r in enumerate(resources)
        ],
    }


def fhir_patient(pid: str = "p1", birth: str = "1961-05-02", gender: str = "female") -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Mustermann", "given": ["Erika"]}],
        "identifier": [{"system": "urn:mrn", "value": "MRN-778899"}],
        "gender": gender,
        "birthDate": birth,
    }


def fhir_primary(
    cid: str = "c1",
    *,
    coding: dict[str, Any] | None = None,
    onset: str | None = "2019-03-14",
    patient: str = "p1",
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "meta": {"profile": [PRIMARY_PROFILE]},
        "code": {
            "coding": [
                coding
                or {
                    "system": "http://snomed.info/sct",
                    "code": "254637007",
                    "display": "Non-small cell lung cancer (disorder)",
                }
            ]
        },
        "subject": {"reference": f"urn:uuid:{patient}"},
    }
    if onset:
        condition["onsetDateTime"] = onset
    return condition


def fhir_ecog(oid: str, value: int, when: str = "2019-04-01", patient: str = "p1") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
        "subject": {"reference": f"urn:uuid:{patient}"},
        "effectiveDateTime": when,
        "valueInteger": value,
    }


def fhir_minimal_preview() -> dict[str, Any]:
    """A preview with a row of each section: a primary, a systemic therapy and a surgery, an
    adverse event of grade 5 (without a date of death: asked), a tumour marker, a finding."""
    from checklist.fhir_import import map_bundle

    subject = {"reference": "urn:uuid:p1"}
    loinc = "http://loinc.org"
    given = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {"text": "osimertinib"},
        "subject": subject,
        "effectiveDateTime": "2019-05-02",
    }
    surgery = {
        "resourceType": "Procedure",
        "id": "op",
        "status": "completed",
        "category": {"coding": [{"system": "http://snomed.info/sct", "code": "387713003"}]},
        "code": {"text": "lobectomy"},
        "subject": subject,
        "performedDateTime": "2019-04-02",
    }
    event = {
        "resourceType": "AdverseEvent",
        "id": "ae",
        "actuality": "actual",
        "subject": subject,
        "event": {"text": "pneumonitis"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/ctcae/StructureDefinition/ctcae-grade",
                "valueCodeableConcept": {"coding": [{"code": "C48275"}]},
            }
        ],
        "suspectEntity": [{"instance": {"reference": "MedicationStatement/ms"}}],
    }
    marker = {
        "resourceType": "Observation",
        "id": "cea",
        "status": "final",
        "code": {"coding": [{"system": loinc, "code": "2039-6"}]},
        "subject": subject,
        "effectiveDateTime": "2019-05-02",
        "valueQuantity": {"value": 4.1, "code": "ng/mL"},
    }
    leukocytes = marker | {
        "id": "leu",
        "code": {"coding": [{"system": loinc, "code": "6690-2"}]},
        "valueQuantity": {"value": 5100, "code": "/uL"},
    }
    return map_bundle(
        fhir_bundle(fhir_patient(), fhir_primary(), given, surgery, event, marker, leukocytes)
    )
