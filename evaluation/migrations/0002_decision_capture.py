"""Which decisions went through capture, and the scheduled backfill that finds the rest."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


SCHEDULE = ("backfill evaluation captures", "evaluation.tasks.backfill", 10)


def forward(apps, schema_editor):
    # Decisions captured before this ledger existed are done; the others (failed captures,
    # approvals outside the sample) go through the backfill once.
    DecisionCapture = apps.get_model("evaluation", "DecisionCapture")
    EvalCase = apps.get_model("evaluation", "EvalCase")
    DecisionCapture.objects.bulk_create(
        DecisionCapture(decision_id=pk, outcome="captured")
        for pk in EvalCase.objects.filter(decision__isnull=False).values_list(
            "decision_id", flat=True
        )
    )
    name, func, minutes = SCHEDULE
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=name,
        defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
    )


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE[0]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0001_initial'),
        ('reviews', '0003_open_expiry_index'),
        ('django_q', '0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='DecisionCapture',
            fields=[
                ('decision', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='capture', serialize=False, to='reviews.decision')),
                ('outcome', models.CharField(choices=[('captured', 'Captured as a case'), ('skipped', 'Not a correction, or an approval outside the sample'), ('opted_out', 'The tenant does not share evaluation data')], max_length=20)),
                ('captured_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunPython(forward, backward),
    ]
