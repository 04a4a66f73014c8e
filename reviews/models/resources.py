"""Which reviews touched which resource: the index behind a packet's resource history."""

from django.db import models

from .reviews import ReviewRequest


class ResourceRef(models.Model):
    """One affected resource of one review, written with the review, so the earlier
    reviews of the same order or user are one indexed query on every database (a JSON
    `contains` lookup on affected_resources does not work on SQLite)."""

    review = models.ForeignKey(
        ReviewRequest, on_delete=models.CASCADE, related_name="resource_refs"
    )
    tenant = models.CharField(max_length=100, blank=True, default="")
    resource_type = models.CharField(max_length=100)
    resource_id = models.CharField(max_length=200)
    # The review's own creation time, copied so the newest come first from the index.
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["review", "resource_type", "resource_id"], name="one_ref_per_resource"
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "resource_type", "resource_id", "-created_at"],
                name="resource_history_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type} {self.resource_id} in {self.review_id}"
