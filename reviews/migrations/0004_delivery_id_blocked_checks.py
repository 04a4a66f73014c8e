# Webhook deliveries get a stable public id (receivers deduplicate retries on it) and a
# blocked execution names the checks that failed.

from django.db import migrations, models

import reviews.models


def backfill_delivery_ids(apps, schema_editor):
    # Each existing delivery needs its own id before the column becomes unique; a column
    # default would give every row the same one.
    WebhookDelivery = apps.get_model("reviews", "WebhookDelivery")
    for delivery in WebhookDelivery.objects.filter(delivery_id__isnull=True).only("pk").iterator():
        delivery.delivery_id = reviews.models.new_delivery_id()
        delivery.save(update_fields=["delivery_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0003_open_expiry_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="blocked_checks",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddField(
            model_name="historicalexecution",
            name="blocked_checks",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(backfill_delivery_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="delivery_id",
            field=models.CharField(
                default=reviews.models.new_delivery_id,
                editable=False,
                max_length=40,
                unique=True,
            ),
        ),
    ]
