# Each tool call a run proposed gets a row (the existing reviews too), and the run's
# checkpoint a version.

import django.db.models.deletion
import django.utils.timezone
import simple_history.models
from django.conf import settings
from django.db import migrations, models


def backfill_calls(apps, schema_editor):
    # Every review so far was one proposed call: its run lists it. A rerouted review and its
    # successors are one call, which follows the live (last) review of the chain.
    ReviewRequest = apps.get_model("reviews", "ReviewRequest")
    RunCall = apps.get_model("reviews", "RunCall")
    successor = dict(
        ReviewRequest.objects.filter(rerouted_to__isnull=False).values_list("pk", "rerouted_to")
    )
    rerouted = set(successor.values())
    batch = []
    fields = ("pk", "run_id", "action_name", "target_system", "arguments", "created_at")
    for pk, run_id, name, target, args, created_at in (
        ReviewRequest.objects.order_by("pk").values_list(*fields).iterator(chunk_size=2000)
    ):
        if pk in rerouted:
            continue
        live = pk
        while live in successor:
            live = successor[live]
        batch.append(
            RunCall(
                run_id=run_id,
                review_id=live,
                action_name=name,
                target_system=target,
                args=args or {},
                outcome="human_review",
                created_at=created_at,
            )
        )
        if len(batch) >= 2000:
            RunCall.objects.bulk_create(batch)
            batch = []
    RunCall.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0006_queue_members_history"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="agentrun",
            name="checkpoint_version",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="historicalagentrun",
            name="checkpoint_version",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.CreateModel(
            name="HistoricalRunCall",
            fields=[
                (
                    "id",
                    models.BigIntegerField(
                        auto_created=True, blank=True, db_index=True, verbose_name="ID"
                    ),
                ),
                ("history_actor", models.CharField(blank=True, default="", max_length=200)),
                ("tool_call_id", models.CharField(blank=True, default="", max_length=200)),
                ("action_name", models.CharField(max_length=200)),
                ("target_system", models.CharField(blank=True, default="", max_length=200)),
                ("args", models.JSONField(blank=True, default=dict)),
                ("description", models.TextField(blank=True, default="")),
                ("allowed_decisions", models.JSONField(blank=True, default=list)),
                ("answerable", models.BooleanField(default=False)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("auto_execute", "auto execute"),
                            ("human_review", "human review"),
                            ("request_clarification", "request clarification"),
                            ("deny", "deny"),
                        ],
                        max_length=30,
                    ),
                ),
                ("explanation", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.TextField(null=True)),
                (
                    "history_type",
                    models.CharField(
                        choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1
                    ),
                ),
                (
                    "history_user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "review",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="reviews.reviewrequest",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="reviews.agentrun",
                    ),
                ),
            ],
            options={
                "verbose_name": "historical run call",
                "verbose_name_plural": "historical run calls",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.CreateModel(
            name="RunCall",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tool_call_id", models.CharField(blank=True, default="", max_length=200)),
                ("action_name", models.CharField(max_length=200)),
                ("target_system", models.CharField(blank=True, default="", max_length=200)),
                ("args", models.JSONField(blank=True, default=dict)),
                ("description", models.TextField(blank=True, default="")),
                ("allowed_decisions", models.JSONField(blank=True, default=list)),
                ("answerable", models.BooleanField(default=False)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("auto_execute", "auto execute"),
                            ("human_review", "human review"),
                            ("request_clarification", "request clarification"),
                            ("deny", "deny"),
                        ],
                        max_length=30,
                    ),
                ),
                ("explanation", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "review",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="call",
                        to="reviews.reviewrequest",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="calls",
                        to="reviews.agentrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run", "created_at", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("tool_call_id", ""), _negated=True),
                        fields=("run", "tool_call_id"),
                        name="run_call_unique_tool_call_id",
                    )
                ],
            },
        ),
        migrations.RunPython(backfill_calls, migrations.RunPython.noop),
    ]
