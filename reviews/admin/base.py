"""What the reviews admins share: the project's admin bases, refusing with review errors."""

from django.core.exceptions import ValidationError

from hitl.admin import NoRevertHistoryAdmin, ServiceSaveMixin

from ..exceptions import ReviewError


class ReviewServiceAdmin(ServiceSaveMixin, NoRevertHistoryAdmin):
    """A reviews screen whose saves call the review services; what they refuse is shown on
    the form."""

    refusals = (ValidationError, ReviewError)
