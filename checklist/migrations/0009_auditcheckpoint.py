from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("checklist", "0008_usersession"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("chain", models.BigIntegerField()),
                ("seq", models.BigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("taken_at", models.DateTimeField()),
                ("signature", models.CharField(max_length=100)),
            ],
            options={
                "indexes": [models.Index(fields=["chain", "-seq"], name="checkpoint_chain")],
            },
        ),
    ]
