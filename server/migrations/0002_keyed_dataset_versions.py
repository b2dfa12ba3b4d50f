"""Replace every dataset's version, once a plain SHA-256 of its points, by the keyed one.

The old versions let a student confirm guesses of hidden labels offline. The new version
differs from the old one, so workers fetch each dataset's points once more.
"""

from django.db import migrations

from server.models import dataset_version


def rekey_versions(apps, schema_editor):
    Dataset = apps.get_model("server", "Dataset")
    Point = apps.get_model("server", "Point")
    for dataset in list(Dataset.objects.all()):
        rows = (
            Point.objects.filter(dataset_id=dataset.pk)
            .order_by("id")
            .values_list("id", "set", "values", "label")
        )
        header = {"features": dataset.features, "target": dataset.target, "task": dataset.task}
        dataset.version = dataset_version(dataset.pk, header, rows.iterator(chunk_size=2000))
        dataset.save(update_fields=["version"])


class Migration(migrations.Migration):
    dependencies = [("server", "0001_initial")]

    operations = [migrations.RunPython(rekey_versions, migrations.RunPython.noop)]
