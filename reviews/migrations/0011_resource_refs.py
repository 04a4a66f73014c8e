# The index behind a packet's resource history (reviews.models.resources.ResourceRef),
# filled for the reviews that exist already.

import django.db.models.deletion
from django.db import migrations, models

BATCH = 500


def backfill(apps, schema_editor):
    ReviewRequest = apps.get_model("reviews", "ReviewRequest")
    ResourceRef = apps.get_model("reviews", "ResourceRef")
    rows = []
    reviews = ReviewRequest.objects.values_list("pk", "tenant", "created_at", "affected_resources")
    for pk, tenant, created_at, resources in reviews.iterator(chunk_size=BATCH):
        seen = set()
        for resource in resources or []:
            if not isinstance(resource, dict):
                continue
            key = (str(resource.get("type", ""))[:100], str(resource.get("id", ""))[:200])
            if not all(key) or key in seen:
                continue
            seen.add(key)
            rows.append(
                ResourceRef(
                    review_id=pk,
                    tenant=tenant,
                    resource_type=key[0],
                    resource_id=key[1],
                    created_at=created_at,
                )
            )
        if len(rows) >= BATCH:
            ResourceRef.objects.bulk_create(rows)
            rows = []
    ResourceRef.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0010_review_question"),
    ]

    operations = [
        migrations.CreateModel(
            name="ResourceRef",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tenant", models.CharField(blank=True, default="", max_length=100)),
                ("resource_type", models.CharField(max_length=100)),
                ("resource_id", models.CharField(max_length=200)),
                ("created_at", models.DateTimeField()),
                (
                    "review",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="resource_refs",
                        to="reviews.reviewrequest",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["tenant", "resource_type", "resource_id", "-created_at"],
                        name="resource_history_idx",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("review", "resource_type", "resource_id"),
                        name="one_ref_per_resource",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
