"""Errors the review services raise; each carries a stable code and the HTTP status it maps to."""


class ReviewError(Exception):
    """A request the review workflow refuses, with a message a person can act on."""

    code = "review_error"
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        field_errors: dict[str, list[str]] | None = None,
        code: str | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}
        if code:
            # One class, several precise codes: an agent branches on the code, not the text.
            self.code = code
        # More of the answer for a program (the review's state, what to do next).
        self.extra = extra or {}


class InvalidReviewInput(ReviewError):
    code = "invalid"
    http_status = 400


class ReasonRequired(ReviewError):
    code = "reason_required"
    http_status = 400


class ChoiceNotOffered(ReviewError):
    code = "choice_not_offered"
    http_status = 400


class NotAuthorized(ReviewError):
    code = "not_authorized"
    http_status = 403


class SelfDecisionForbidden(ReviewError):
    code = "self_decision_forbidden"
    http_status = 403


class AlreadyDecided(ReviewError):
    """Someone else decided (or the review closed) first; nothing was changed."""

    code = "already_decided"
    http_status = 409


class TransitionNotAllowed(ReviewError):
    code = "transition_not_allowed"
    http_status = 409


class ReviewExpired(ReviewError):
    code = "review_expired"
    http_status = 409


class DuplicateApproval(ReviewError):
    code = "duplicate_approval"
    http_status = 409


class NotExecutable(ReviewError):
    """Only an approved or edited review executes; the code says which state it is in
    instead (review_pending, review_rejected, review_expired, ...)."""

    code = "not_executable"
    http_status = 409


class ClaimInputMissing(ReviewError):
    """A claim lacks what the platform must check before the action runs; nothing was
    claimed, and the same claim with the missing input succeeds."""

    code = "claim_input_missing"
    http_status = 400


class AlreadyClaimed(ReviewError):
    """The review's one execution exists already; it is never started twice."""

    code = "already_claimed"
    http_status = 409


class NoQueueForTenant(ReviewError):
    """The policy names a queue the proposal's tenant does not have."""

    code = "no_queue_for_tenant"
    http_status = 422


class IdempotencyConflict(ReviewError):
    code = "idempotency_conflict"
    http_status = 422


class CheckpointConflict(ReviewError):
    """The checkpoint changed since the version the agent read; `extra` carries the current
    version. Nothing was written."""

    code = "checkpoint_conflict"
    http_status = 409


class RunHasOpenReviews(ReviewError):
    """A run with open reviews ends only if they are cancelled with it (`cancel_open`)."""

    code = "run_has_open_reviews"
    http_status = 409


class FactsUnavailable(ReviewError):
    """The action type's fact provider failed: nothing can be re-checked, so nothing is
    claimed or used up; the same request succeeds once the provider answers again."""

    code = "facts_unavailable"
    http_status = 503
