"""The one guard: may this person take this choice on this review now, and if not, why."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django_fsm import can_proceed

from policies.engine import owner_only_text

from ..choices import SPEC_BY_VALUE, SPECS
from ..exceptions import (
    AlreadyDecided,
    ChoiceNotOffered,
    NotAuthorized,
    ReasonRequired,
    ReviewError,
    ReviewExpired,
    SelfDecisionForbidden,
    TransitionNotAllowed,
)
from ..models import (
    FINAL_STATES,
    ReviewRequest,
    ReviewState,
)
from .access import _is_member, authority_refusal, can_decide, may_act_as_queue_owner
from .packets import last_decision


@dataclass(frozen=True)
class ChoiceVerdict:
    """Whether one person may take one choice on one review now; if not, why, and the
    error the decision service raises for it."""

    choice: str
    allowed: bool
    reason: str = ""
    error: type[ReviewError] | None = None
    # Refused because of the review (closed, expired, not possible in its state), not of
    # who is asking: a screen need not explain those choice by choice.
    about_review: bool = False

    def raise_if_refused(self) -> None:
        """Raise the refusal as the decision service reports it."""
        if self.allowed:
            return
        if self.error is ReasonRequired:
            raise ReasonRequired(
                self.reason, field_errors={"reason": ["This choice needs a reason."]}
            )
        raise self.error(self.reason)


def choice_verdict(
    *,
    review: ReviewRequest,
    user: AbstractBaseUser,
    choice: str,
    reason: str | None = None,
) -> ChoiceVerdict:
    """The one answer to "may this person take this choice on this review now, and if
    not, why": the decision service enforces it, the screens offer only what it allows.
    `reason` None means not typed yet (a screen asks before anyone types)."""
    return _Guard(review, user).verdict(choice, reason)


def choice_verdicts(*, review: ReviewRequest, user: AbstractBaseUser) -> list[ChoiceVerdict]:
    """The verdict on each choice the review offers, in the review's order."""
    guard = _Guard(review, user)
    return [guard.verdict(choice, None) for choice in review.choices]


def available_choices(*, review: ReviewRequest, user: AbstractBaseUser) -> list[str]:
    """The choices this person may take on this review now: nothing that would be refused
    is offered (an edit is checked again with the edited arguments when it is made)."""
    return [v.choice for v in choice_verdicts(review=review, user=user) if v.allowed]


class _Guard:
    """Verdicts for one person on one review; what every choice shares is looked up once."""

    def __init__(self, review: ReviewRequest, user: AbstractBaseUser):
        self.review = review
        self.user = user
        self._decides: bool | None = None
        self._taken_over: bool | None = None
        self._authority: dict[bool, str | None] = {}

    def decides(self) -> bool:
        if self._decides is None:
            self._decides = can_decide(user=self.user, review=self.review)
        return self._decides

    def taken_over(self) -> bool:
        """Whether a person holds the case: escalated, and its last decision took it over."""
        if self._taken_over is None:
            last = (
                last_decision(self.review) if self.review.state == ReviewState.ESCALATED else None
            )
            self._taken_over = last is not None and SPEC_BY_VALUE[last.choice].hands_over
        return self._taken_over

    def authority(self, amount_matters: bool) -> str | None:
        if amount_matters not in self._authority:
            self._authority[amount_matters] = authority_refusal(
                review=self.review, user=self.user, amount_matters=amount_matters
            )
        return self._authority[amount_matters]

    def _unavailable(self, choice: str, spec) -> tuple[type[ReviewError], str] | None:
        """Why this choice cannot be taken on this review now, whoever asks (None: it can)."""
        review = self.review
        state = review.get_state_display().lower()
        if review.state in FINAL_STATES:
            return AlreadyDecided, f"This review is already {state}."
        if review.is_past_expiry():
            return ReviewExpired, "This review has expired and can no longer be decided."
        if spec is not None and spec.after_take_over and not self.taken_over():
            return (
                TransitionNotAllowed,
                f"'{spec.label}' closes a case a person took over; take it over first.",
            )
        transition = getattr(review, spec.transition, None) if spec else None
        if transition is None or not can_proceed(transition, check_conditions=False):
            return TransitionNotAllowed, f"'{choice}' is not possible while the review is {state}."
        if choice not in review.choices:
            return ChoiceNotOffered, f"'{choice}' is not offered for this review."
        return None

    def verdict(self, choice: str, reason: str | None) -> ChoiceVerdict:
        review, user = self.review, self.user

        def no(error: type[ReviewError], why: str, about_review: bool = False) -> ChoiceVerdict:
            return ChoiceVerdict(choice, False, why, error, about_review)

        spec = SPEC_BY_VALUE.get(choice)
        unavailable = self._unavailable(choice, spec)
        if unavailable is not None:
            return no(*unavailable, True)
        if spec.hands_over and _taken_over_by(review, user):
            return no(TransitionNotAllowed, "You have already taken this case over.")
        if reason is not None and spec.reason_required and not reason:
            return no(ReasonRequired, f"A reason is required to {spec.hint or spec.label.lower()}.")
        if review.proposed_by_user_id is not None and review.proposed_by_user_id == user.pk:
            return no(
                SelfDecisionForbidden, "You proposed this action and cannot decide it yourself."
            )
        # A case a person took over is theirs to close (or its queue owner's): nobody else
        # ends it under them, though another may take it over, visibly, with a decision.
        if spec.framework_decision and self.taken_over() and not _holds(review, user):
            return no(NotAuthorized, _held_text(review))
        if not self.decides():
            escalated = review.state == ReviewState.ESCALATED
            if escalated and user.is_active and _is_member(review.queue, user):
                return no(NotAuthorized, _escalated_to_text(review))
            return no(NotAuthorized, "You are not a reviewer of this review's queue.")
        executing = spec.executes
        if spec.correction == "edit" and review.required_approvals > 1:
            return no(
                ChoiceNotOffered,
                f"This review needs {review.required_approvals} approvers; an edit by one "
                "person cannot replace that. Reject with a reason or ask for evidence.",
            )
        if executing and not may_act_as_queue_owner(review=review, user=user):
            return no(NotAuthorized, owner_only_text(review.action_name))
        # What lets the action happen needs a grant up to the amount; what steers the agent
        # or takes the case needs a grant for the action and tenant. Stopping it, asking for
        # evidence or escalating it is every member's job, or an action nobody holds a grant
        # for (one missing from the catalogue) would wait in the inbox with no way out.
        if executing:
            refusal = self.authority(amount_matters=True)
        elif spec.needs_grant:
            refusal = self.authority(amount_matters=False)
        else:
            refusal = None
        if refusal:
            return no(NotAuthorized, refusal)
        return ChoiceVerdict(choice, True)


def _escalated_to_text(review: ReviewRequest) -> str:
    queue = review.queue
    holder = review.assignee or queue.escalation_owner or queue.owner
    who = holder.get_username() if holder else f"the owner of {queue.name}"
    return f"This review is escalated: {who} decides it now, not the queue's members."


def _holds(review: ReviewRequest, user: AbstractBaseUser) -> bool:
    return user.is_superuser or user.pk in (review.assignee_id, review.queue.owner_id)


def _held_text(review: ReviewRequest) -> str:
    queue = review.queue
    holder = review.assignee.get_username() if review.assignee_id else "the person"
    owner = f" ({queue.owner.get_username()})" if queue.owner_id else ""
    return (
        f"{holder} holds this taken-over case: only {holder} or the owner of "
        f"{queue.name}{owner} may resolve it now."
    )


def _taken_over_by(review: ReviewRequest, user: AbstractBaseUser) -> bool:
    return (
        review.state == ReviewState.ESCALATED
        and review.assignee_id == user.pk
        and review.decisions.filter(
            choice__in=[s.value for s in SPECS if s.hands_over], reviewer=user
        ).exists()
    )
