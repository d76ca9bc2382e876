"""Therapy lines become episodes and the two adverse-event tables become one.

Episodes: a line whose therapy types are all local (surgery, radiotherapy) or all
watch-and-wait / active surveillance becomes an episode of that kind without a number; every
other line is a systemic line and keeps its number. The old `setting` becomes the `position`
(neoadjuvant, adjuvant, maintenance, definitive and other keep their meaning; "palliative"
becomes "first line for advanced disease" when its palliative line number was 1, otherwise
"later line for advanced disease"), so the one numbering field left is the line number.

Adverse events: an old event keeps every value; `resolved` becomes the course "resolved", and
`resolved = False` becomes "not recorded" (the old form could not say "persisting"). Every
immune-related event becomes an adverse event of the case with the immune-related flag, CTCAE
version "not recorded" (none was asked), its organ as the term, its treatment as the other
treatment, and `rechallenged` "yes" when it was ticked ("not recorded" otherwise: an unticked
box did not say "no").

The reverse restores the old shapes: immune-related events without a line go back to their
own table, courses to resolved yes/no, positions to settings, and local episodes get the
number 0 the old model required (their old number was not kept). An unknown grade, which
the old tables cannot hold, refuses the reverse.
"""

from django.db import migrations

LOCAL_KINDS = [
    ({"OP"}, "surgery"),
    ({"ST"}, "radiotherapy"),
    ({"WW", "AS", "WS"}, "watch_and_wait"),
]
SETTING_TO_POSITION = {
    "neoadjuvant": "N",
    "adjuvant": "A",
    "maintenance": "maintenance",
    "definitive": "definitive",
    "other": "S",
}
POSITION_TO_SETTING = {
    "N": "neoadjuvant",
    "A": "adjuvant",
    "maintenance": "maintenance",
    "definitive": "definitive",
    "first_advanced": "palliative",
    "later_advanced": "palliative",
}


def _kind(types):
    for codes, kind in LOCAL_KINDS:
        if types and set(types) <= codes:
            return kind
    return "systemic"


def forward(apps, schema_editor):
    TherapyLine = apps.get_model("checklist", "TherapyLine")
    AdverseEvent = apps.get_model("checklist", "AdverseEvent")
    ImmuneAdverseEvent = apps.get_model("checklist", "ImmuneAdverseEvent")
    for line in TherapyLine.objects.order_by("pk"):
        line.kind = _kind(line.types)
        if line.kind != "systemic":
            line.number = None
        if line.setting == "palliative":
            line.position = "first_advanced" if line.palliative_line == 1 else "later_advanced"
        else:
            line.position = SETTING_TO_POSITION.get(line.setting, "")
        line.save(update_fields=["kind", "number", "position"])
    AdverseEvent.objects.filter(resolved=True).update(course="resolved")
    AdverseEvent.objects.filter(resolved=False).update(course="not_recorded")
    for old in ImmuneAdverseEvent.objects.order_by("pk"):
        AdverseEvent.objects.create(
            practice_id=old.practice_id,
            case_id=old.case_id,
            line=None,
            term=old.organ,
            grade=str(old.grade),
            ctcae_version="not_recorded",
            onset_on=old.occurred_on,
            onset_on_precision=old.occurred_on_precision,
            immune_related=True,
            treatment=old.treatment,
            course="resolved" if old.resolved else "not_recorded",
            rechallenged="yes" if old.rechallenged else "",
        )
    ImmuneAdverseEvent.objects.all().delete()


def backward(apps, schema_editor):
    TherapyLine = apps.get_model("checklist", "TherapyLine")
    AdverseEvent = apps.get_model("checklist", "AdverseEvent")
    ImmuneAdverseEvent = apps.get_model("checklist", "ImmuneAdverseEvent")
    if AdverseEvent.objects.filter(grade="U").exists():
        raise RuntimeError("Adverse events with an unknown grade: the old tables cannot hold them.")
    for event in AdverseEvent.objects.filter(immune_related=True, line__isnull=True):
        ImmuneAdverseEvent.objects.create(
            practice_id=event.practice_id,
            case_id=event.case_id,
            organ=event.term,
            grade=int(event.grade),
            treatment=event.treatment,
            resolved=event.course == "resolved",
            rechallenged=event.rechallenged == "yes",
            occurred_on=event.onset_on,
            occurred_on_precision=event.onset_on_precision,
        )
        event.delete()
    AdverseEvent.objects.update(resolved=False)
    AdverseEvent.objects.filter(course="resolved").update(resolved=True)
    for line in TherapyLine.objects.order_by("pk"):
        line.setting = POSITION_TO_SETTING.get(line.position, "other")
        line.palliative_line = 1 if line.position == "first_advanced" else None
        if line.number is None:
            line.number = 0
        line.save(update_fields=["setting", "palliative_line", "number"])


class Migration(migrations.Migration):
    dependencies = [("checklist", "0020_alter_therapyline_options_and_more")]

    operations = [migrations.RunPython(forward, backward)]
