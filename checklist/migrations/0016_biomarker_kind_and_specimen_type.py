"""A biomarker's kind said two things at once: what the marker describes and where it was
measured ("tissue", "serum", "germline"). It now says what it describes (somatic, circulating,
germline) and the specimen type says where: "tissue" becomes somatic in tissue, "serum" a
circulating marker in serum; a germline result keeps its kind and gets no specimen type (it
was never recorded, and none is guessed). The reverse maps back; a specimen type recorded
since (peripheral blood, bone marrow) has no place in the old shape and is dropped."""

from django.db import migrations

FORWARD = {"tissue": ("somatic", "tissue"), "serum": ("circulating", "serum")}
BACKWARD = {"somatic": "tissue", "circulating": "serum"}


def forward(apps, schema_editor):
    Biomarker = apps.get_model("checklist", "Biomarker")
    for old, (kind, specimen_type) in FORWARD.items():
        Biomarker.objects.filter(kind=old).update(kind=kind, specimen_type=specimen_type)


def backward(apps, schema_editor):
    Biomarker = apps.get_model("checklist", "Biomarker")
    for new, old in BACKWARD.items():
        Biomarker.objects.filter(kind=new).update(kind=old)
    Biomarker.objects.update(specimen_type="", method="")


class Migration(migrations.Migration):
    dependencies = [("checklist", "0015_prophylaxis_vaccination_biomarker_method_and_more")]

    operations = [migrations.RunPython(forward, backward)]
