# A taken-over case gets a deadline (a reminder halfway, then a hand-back to the queue's
# owner: reviews.services.takeovers) and can be resolved by the person holding it (the
# `resolved` state and the choices `done_by_person`, `not_needed`). Open escalations offer
# the new choices, taken-over cases start their clock now, and the sweep is scheduled.

from datetime import timedelta

import django_fsm
from django.db import migrations, models
from django.utils import timezone

# As reviews.choices.narrow would have offered them: each only where the agent's framework
# takes the decision it closes as (done_by_person closes as a response, like guide;
# not_needed as a rejection, like reject).
NEW_CHOICES = (("done_by_person", "guide"), ("not_needed", "reject"))
SCHEDULE = ("takeover deadlines", "reviews.takeover_tasks.takeover_sweep", 5)
TIMEOUT = timedelta(days=1)


def forwards(apps, schema_editor):
    ReviewRequest = apps.get_model("reviews", "ReviewRequest")
    Decision = apps.get_model("reviews", "Decision")
    reviews = ReviewRequest.objects.filter(
        kind="escalation", state__in=("pending", "escalated")
    ).only("pk", "choices", "state")
    now = timezone.now()
    for review in reviews.iterator(chunk_size=500):
        choices = list(review.choices or [])
        if "take_over" not in choices:
            continue
        added = [new for new, like in NEW_CHOICES if like in choices and new not in choices]
        at = choices.index("take_over") + 1
        fields = {"choices": choices[:at] + added + choices[at:]}
        last = Decision.objects.filter(review_id=review.pk).order_by("-decided_at", "-id").first()
        if review.state == "escalated" and last is not None and last.choice == "take_over":
            fields["takeover_deadline"] = now + TIMEOUT
            fields["takeover_next_at"] = now + TIMEOUT / 2
        ReviewRequest.objects.filter(pk=review.pk).update(**fields)
    Schedule = apps.get_model("django_q", "Schedule")
    name, func, minutes = SCHEDULE
    Schedule.objects.update_or_create(
        name=name,
        defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE[0]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0011_resource_refs"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="historicalreviewrequest",
            name="takeover_deadline",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="historicalreviewrequest",
            name="takeover_next_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reviewrequest",
            name="takeover_deadline",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reviewrequest",
            name="takeover_next_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="decision",
            name="choice",
            field=models.CharField(
                choices=[
                    ("approve", "Approve"),
                    ("edit", "Edit"),
                    ("reject", "Reject"),
                    ("request_more_evidence", "Request more evidence"),
                    ("escalate", "Escalate"),
                    ("take_over", "Take over"),
                    ("done_by_person", "Resolved: done by a person"),
                    ("not_needed", "Resolved: not needed"),
                    ("guide", "Guide"),
                    ("respond", "Respond"),
                ],
                max_length=30,
            ),
        ),
        migrations.AlterField(
            model_name="decision",
            name="state_after",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("approved", "Approved"),
                    ("edited", "Edited"),
                    ("rejected", "Rejected"),
                    ("escalated", "Escalated"),
                    ("expired", "Expired"),
                    ("awaiting_evidence", "Awaiting evidence"),
                    ("cancelled", "Cancelled"),
                    ("resolved", "Resolved"),
                ],
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="decision",
            name="state_before",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("approved", "Approved"),
                    ("edited", "Edited"),
                    ("rejected", "Rejected"),
                    ("escalated", "Escalated"),
                    ("expired", "Expired"),
                    ("awaiting_evidence", "Awaiting evidence"),
                    ("cancelled", "Cancelled"),
                    ("resolved", "Resolved"),
                ],
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="historicalreviewrequest",
            name="state",
            field=django_fsm.FSMField(
                choices=[
                    ("pending", "Pending"),
                    ("approved", "Approved"),
                    ("edited", "Edited"),
                    ("rejected", "Rejected"),
                    ("escalated", "Escalated"),
                    ("expired", "Expired"),
                    ("awaiting_evidence", "Awaiting evidence"),
                    ("cancelled", "Cancelled"),
                    ("resolved", "Resolved"),
                ],
                default="pending",
                max_length=20,
                protected=True,
            ),
        ),
        migrations.AlterField(
            model_name="reviewrequest",
            name="state",
            field=django_fsm.FSMField(
                choices=[
                    ("pending", "Pending"),
                    ("approved", "Approved"),
                    ("edited", "Edited"),
                    ("rejected", "Rejected"),
                    ("escalated", "Escalated"),
                    ("expired", "Expired"),
                    ("awaiting_evidence", "Awaiting evidence"),
                    ("cancelled", "Cancelled"),
                    ("resolved", "Resolved"),
                ],
                default="pending",
                max_length=20,
                protected=True,
            ),
        ),
        migrations.AddIndex(
            model_name="reviewrequest",
            index=models.Index(fields=["state", "takeover_next_at"], name="review_takeover_idx"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
