"""A metastasis "established by imaging" did not say which imaging. Its detection method
becomes "imaging, method not recorded", shown as such; no method is guessed."""

from django.db import migrations


def forward(apps, schema_editor):
    Metastasis = apps.get_model("checklist", "Metastasis")
    Metastasis.objects.filter(established_by="imaging").update(
        established_by="imaging_unspecified"
    )


def backward(apps, schema_editor):
    Metastasis = apps.get_model("checklist", "Metastasis")
    Metastasis.objects.filter(established_by="imaging_unspecified").update(
        established_by="imaging"
    )
    # The imaging methods recorded since read as "imaging" in the old shape.
    Metastasis.objects.filter(established_by__in=["ct", "mri", "pet_ct", "bone_scan"]).update(
        established_by="imaging"
    )


class Migration(migrations.Migration):
    dependencies = [("checklist", "0016_biomarker_kind_and_specimen_type")]

    operations = [migrations.RunPython(forward, backward)]
