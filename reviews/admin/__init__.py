"""Admin screens of the reviews app (importing the modules registers them)."""

from django.contrib import admin

from hitl.admin import validate_every_changelist

from . import inbox, operations  # noqa: F401

# By now the admins of the apps listed before ours (auth, django_q) are registered; their
# changelists get the same checks as ours (a `?username__regex=\\` was a 500 too).
validate_every_changelist(admin.site)
