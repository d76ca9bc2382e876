"""Vaccinations become dated rows. The free text a finding held is kept verbatim: each
becomes a vaccination row of the case whose note is that text (no vaccine name and no date is
read out of it: the page shows it as the physician wrote it). The reverse writes each such
row's note back into the free text of the case's earliest finding that holds none and deletes
the row (a row with no such finding stays); rows entered as rows since are left alone."""

from django.db import migrations



def forward(apps, schema_editor):
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    Vaccination = apps.get_model("checklist", "Vaccination")
    rows = [
        Vaccination(
            practice_id=finding.practice_id,
            case_id=finding.case_id,
            vaccine="",
            given_on=None,
            note=finding.vaccinations,
        )
        for finding in ImmuneFinding.objects.exclude(vaccinations="").order_by("pk")
    ]
    Vaccination.objects.bulk_create(rows)


def backward(apps, schema_editor):
    ImmuneFinding = apps.get_model("checklist", "ImmuneFinding")
    Vaccination = apps.get_model("checklist", "Vaccination")
    for row in Vaccination.objects.filter(vaccine="", given_on=None).exclude(note="").order_by(
        "pk"
    ):
        finding = (
            ImmuneFinding.objects.filter(case_id=row.case_id, vaccinations="")
            .order_by("assessed_on", "pk")
            .first()
        )
        if finding is None:
            continue  # no finding to hold the text: the row stays
        finding.vaccinations = row.note[:500]
        finding.save(update_fields=["vaccinations"])
        row.delete()


class Migration(migrations.Migration):
    dependencies = [("checklist", "0017_metastasis_imaging_method_not_recorded")]

    operations = [migrations.RunPython(forward, backward)]
