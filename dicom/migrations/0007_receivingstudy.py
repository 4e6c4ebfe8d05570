from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dicom", "0006_study_source_accession_qc_release"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReceivingStudy",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("orthanc_id", models.CharField(max_length=64, unique=True)),
                ("last_instance_at", models.DateTimeField(db_index=True)),
                ("last_seq", models.BigIntegerField(default=0)),
                ("first_seen_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
