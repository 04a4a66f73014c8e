"""The worker's recurring sweeps, created once (and again if someone deletes them)."""

from django.db import migrations

SCHEDULES = [
    # name, function, minutes between runs
    ("retry webhooks", "reviews.tasks.retry_webhooks", 1),
    ("expire reviews", "reviews.tasks.expire_reviews", 1),
    ("send reminders", "reviews.tasks.send_reminders", 1),
    ("reconcile executions", "reviews.tasks.reconcile_executions", 5),
]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def remove(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
