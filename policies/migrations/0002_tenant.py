"""Tenants become rows a platform admin creates; those already named by policies are kept."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import re
import simple_history.models
from django.conf import settings
from django.db import migrations, models


def register_tenants(apps, schema_editor):
    used = set(apps.get_model("policies", "PolicyActivation").objects.values_list("tenant", flat=True))
    used |= set(apps.get_model("policies", "RuleSet").objects.values_list("tenant", flat=True))
    for tenants in apps.get_model("policies", "ReviewerGrant").objects.values_list("tenants", flat=True):
        used |= set(tenants or [])
    Tenant = apps.get_model("policies", "Tenant")
    Tenant.objects.bulk_create(Tenant(slug=slug, name=slug) for slug in sorted(used - {""}))


class Migration(migrations.Migration):

    dependencies = [
        ('policies', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Tenant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.CharField(max_length=64, unique=True, validators=[django.core.validators.RegexValidator(re.compile('^[a-z0-9][a-z0-9_-]*$'), 'Use lowercase letters, digits, - and _, starting with a letter or digit.')])),
                ('name', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['slug'],
            },
        ),
        migrations.CreateModel(
            name='HistoricalTenant',
            fields=[
                ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                ('slug', models.CharField(db_index=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('^[a-z0-9][a-z0-9_-]*$'), 'Use lowercase letters, digits, - and _, starting with a letter or digit.')])),
                ('name', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('history_id', models.AutoField(primary_key=True, serialize=False)),
                ('history_date', models.DateTimeField(db_index=True)),
                ('history_change_reason', models.TextField(null=True)),
                ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'historical tenant',
                'verbose_name_plural': 'historical tenants',
                'ordering': ('-history_date', '-history_id'),
                'get_latest_by': ('history_date', 'history_id'),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.RunPython(register_tenants, migrations.RunPython.noop),
    ]
