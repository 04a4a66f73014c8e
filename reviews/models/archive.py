"""How far the append-only tables (history, the policy's decision log) have been copied to
the archive (reviews.services.archive writes it; retention deletes only what it covers)."""

from django.db import models


class ArchiveCursor(models.Model):
    """One append-only table's export: every row dated before `through` is in an archive
    file that was written, flushed to disk and listed in a manifest."""

    target = models.CharField(max_length=40, unique=True)
    through = models.DateTimeField()
    rows = models.BigIntegerField(default=0)  # exported so far, all runs
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.target} archived to {self.through:%Y-%m-%d %H:%M}"
