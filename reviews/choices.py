"""One spec per review choice: everything the product knows about it, in one place.

A new choice is one `ChoiceSpec` in `SPECS` (plus, if it needs a new target state, a
transition on `ReviewRequest` and the migration Django writes for the `Decision.choice`
field). The decision service, the guard (`reviews.selectors.guard`), the screens, the API,
the resume instruction, the metrics and the evaluation capture all read it from here.
`narrow` keeps the choices an agent's framework can consume (its `allowed_decisions`).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import models

from policies.selectors import action_type_for

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

    from .models import Decision, ReviewRequest

APPROVAL, EDIT, ESCALATION = "approval", "edit", "escalation"
# The decisions an agent framework's human-in-the-loop step consumes (LangChain's
# HumanInTheLoopMiddleware: approve, edit, reject, respond): what `allowed_decisions` names.
FRAMEWORK_DECISIONS = ("approve", "edit", "reject", "respond")


@dataclass(frozen=True)
class ChoiceSpec:
    """What one choice is, who is offered it, what it changes and what it tells the agent."""

    value: str
    label: str
    # The ReviewRequest transition it takes (several choices may share one).
    transition: str
    # The review kinds that offer it by default, and those whose policy may add it.
    kinds: tuple[str, ...]
    optional_for: tuple[str, ...] = ()
    reason_required: bool = False
    # How the reason box's hint names it ("required to reject, ...").
    hint: str = ""
    # The action may run afterwards: the grant must cover the amount.
    executes: bool = False
    # Steers the agent or takes the case: needs a grant for the action, not for the amount.
    needs_grant: bool = False
    # A person owns the run afterwards (run status handed_over).
    hands_over: bool = False
    # Counted as an escalation in the metrics.
    escalates: bool = False
    # Evaluation captures every such decision as a candidate case.
    captured: bool = False
    # The answer it gives to "may this action happen?" (yes, no, or "" for neither): a
    # later decision giving the other answer contradicts a captured case.
    answer: str = ""
    # What the reviewer corrects (evaluation's `correction`): "edit", "reason" or "".
    correction: str = ""
    # The framework decision (FRAMEWORK_DECISIONS) the agent gets when this choice closes
    # the review; "" for a choice that does not close it (the review stays with people).
    framework_decision: str = ""
    # Closes a case a person took over: offered only then, and only to the person holding
    # it (or the queue's owner); see reviews.selectors.guard.
    after_take_over: bool = False
    # A button of its own on the decision card (an edit and a response have their own
    # blocks instead).
    button: bool = True
    # Labels that differ by review kind ("Accept as is" on an edit review).
    label_by_kind: dict[str, str] = field(default_factory=dict)
    # The button's colour family in review.css: go, change, stop, handover, ask.
    look: str = "neutral"
    # What happens after it, in a sentence for the button's caption.
    consequence: Callable[["ReviewRequest"], str] = lambda review: ""
    # What the agent is told once the review is closed by it; None: the execute path.
    resume: Callable[["ReviewRequest", "Decision | None"], dict] | None = None
    # What the decision writes on the review besides the state (assignee, final content).
    apply: Callable[["ReviewRequest", "AbstractBaseUser", str], None] = lambda r, u, s: None

    def label_for(self, kind: str) -> str:
        return self.label_by_kind.get(kind, self.label)

    @property
    def approves(self) -> bool:
        """Counts toward a review's required approvals: lets the action run as proposed."""
        return self.executes and self.correction != "edit"


# --- what each choice does ----------------------------------------------------------------


def _runs_text(review: "ReviewRequest") -> str:
    action_type = action_type_for(review.action_name)
    if action_type is not None and action_type.executor:
        return "the platform runs it at once"
    return "the agent is told to run it"


def _approve_text(review: "ReviewRequest") -> str:
    if review.kind == EDIT:
        return "The text is used exactly as the agent wrote it."
    consequence = (review.consequence or f"run {review.action_name}").rstrip(".")
    approvals = ""
    if review.required_approvals > 1:
        approvals = f" Needs {review.required_approvals} different approvers."
    return (
        f"{consequence}: {_runs_text(review)}, after a last check that nothing went stale."
        f"{approvals}"
    )


def _edit_text(review: "ReviewRequest") -> str:
    if review.kind == EDIT:
        return "Your corrected text is used instead of the agent's; the change is kept as a diff."
    return (
        "Your corrected arguments are re-checked by the policy and your authority, "
        "then run instead of the proposal."
    )


def _escalate_text(review: "ReviewRequest") -> str:
    queue = review.queue
    owner = queue.escalation_owner or queue.owner
    owner_name = owner.get_username() if owner else f"the {queue.name} queue"
    return f"Ownership moves to {owner_name}, who decides instead."


def _to_escalation_owner(review: "ReviewRequest", reviewer, reason: str) -> None:
    review.assignee = review.queue.escalation_owner or review.queue.owner


def _to_reviewer(review: "ReviewRequest", reviewer, reason: str) -> None:
    from .services.takeovers import start_takeover_clock

    review.assignee = reviewer
    # A person owns the case now: it no longer expires or reroutes by itself, but it has a
    # deadline of its own so it cannot wait forever (a reminder first, then a hand-back).
    review.expires_at = None
    review.next_reminder_at = None
    start_takeover_clock(review)


def _reason_is_the_content(review: "ReviewRequest", reviewer, reason: str) -> None:
    review.final_content = reason


def _stop(review: "ReviewRequest", last: "Decision | None") -> dict:
    return {"action": "stop", "reason": last.reason if last else ""}


def _continue_with_guidance(review: "ReviewRequest", last: "Decision | None") -> dict:
    return {"action": "continue_with_guidance", "guidance": review.final_content}


def _respond(review: "ReviewRequest", last: "Decision | None") -> dict:
    return {"action": "respond", "message": review.final_content}


def _by(last: "Decision | None") -> str:
    return last.reviewer.get_username() if last is not None else ""


def _done_by_person(review: "ReviewRequest", last: "Decision | None") -> dict:
    return {
        "action": "done_by_person",
        "by": _by(last),
        "message": last.reason if last else "",
        # Said outright: an agent that re-ran the call would do the work a second time.
        "run_call": False,
        "detail": "A person did this themselves, outside the agent. Do not run the call; "
        "carry on as if it succeeded, with the message as its result.",
    }


def _not_needed(review: "ReviewRequest", last: "Decision | None") -> dict:
    return {
        "action": "not_needed",
        "by": _by(last),
        "reason": last.reason if last else "",
        "run_call": False,
        "detail": "A person found that this is not needed. Do not run the call; carry on "
        "without it.",
    }


SPECS: tuple[ChoiceSpec, ...] = (
    ChoiceSpec(
        value="approve",
        label="Approve",
        transition="approve",
        kinds=(APPROVAL, EDIT),
        executes=True,
        answer="yes",
        framework_decision="approve",
        label_by_kind={EDIT: "Accept as is"},
        look="go",
        consequence=_approve_text,
    ),
    ChoiceSpec(
        value="edit",
        label="Edit",
        transition="edit",
        kinds=(EDIT,),
        optional_for=(APPROVAL,),
        executes=True,
        captured=True,
        answer="yes",
        correction="edit",
        framework_decision="edit",
        button=False,
        look="change",
        consequence=_edit_text,
    ),
    ChoiceSpec(
        value="reject",
        label="Reject",
        transition="reject",
        kinds=(APPROVAL, EDIT, ESCALATION),
        reason_required=True,
        hint="reject",
        captured=True,
        answer="no",
        framework_decision="reject",
        look="stop",
        consequence=lambda review: (
            "Nothing runs. The agent's run stops and it is told your reason."
        ),
        resume=_stop,
    ),
    ChoiceSpec(
        value="request_more_evidence",
        label="Request more evidence",
        transition="request_more_evidence",
        kinds=(APPROVAL,),
        reason_required=True,
        hint="ask for evidence",
        look="ask",
        consequence=lambda review: (
            "The review waits for the agent to answer your question with evidence, then "
            "comes back to this queue."
        ),
    ),
    ChoiceSpec(
        value="escalate",
        label="Escalate",
        transition="escalate",
        kinds=(APPROVAL, EDIT),
        reason_required=True,
        hint="escalate",
        escalates=True,
        captured=True,
        look="handover",
        consequence=_escalate_text,
        apply=_to_escalation_owner,
    ),
    ChoiceSpec(
        value="take_over",
        label="Take over",
        transition="take_over",
        kinds=(ESCALATION,),
        needs_grant=True,
        hands_over=True,
        escalates=True,
        captured=True,
        look="handover",
        consequence=lambda review: (
            "You own the case from now on: the agent stops and is told a person took over. "
            "Resolve it when it is handled."
        ),
        apply=_to_reviewer,
    ),
    ChoiceSpec(
        value="done_by_person",
        label="Resolved: done by a person",
        transition="resolve",
        kinds=(ESCALATION,),
        after_take_over=True,
        reason_required=True,
        hint="say what was done",
        needs_grant=True,
        # The person's note stands in for the tool's result (what the agent reads).
        framework_decision="respond",
        look="go",
        consequence=lambda review: (
            "Closes the case: you did it yourself. The agent is told it was handled, with your "
            "note, and must not run the call; nothing runs here."
        ),
        resume=_done_by_person,
    ),
    ChoiceSpec(
        value="not_needed",
        label="Resolved: not needed",
        transition="resolve",
        kinds=(ESCALATION,),
        after_take_over=True,
        reason_required=True,
        hint="say why it is not needed",
        needs_grant=True,
        captured=True,
        answer="no",
        # The call must not run, and the agent reads why: a rejection to its framework.
        framework_decision="reject",
        look="stop",
        consequence=lambda review: (
            "Closes the case: nothing needs doing. The agent is told why and carries on "
            "without the call; nothing runs."
        ),
        resume=_not_needed,
    ),
    ChoiceSpec(
        value="guide",
        label="Guide",
        # Guidance changes the plan rather than approving it: the edited state, nothing to run.
        transition="edit",
        kinds=(ESCALATION,),
        reason_required=True,
        hint="guide",
        needs_grant=True,
        captured=True,
        correction="reason",
        # The agent reads guidance where a framework reads a person's response.
        framework_decision="respond",
        look="ask",
        consequence=lambda review: (
            "The agent continues with your guidance and re-plans; nothing of this proposal runs."
        ),
        resume=_continue_with_guidance,
        apply=_reason_is_the_content,
    ),
    ChoiceSpec(
        value="respond",
        label="Respond",
        # The person answers in the tool's place: the edited state, nothing to run.
        transition="edit",
        # Offered only when the agent marked the call answerable (see `narrow`).
        kinds=(),
        optional_for=(APPROVAL, EDIT),
        reason_required=True,
        hint="respond",
        needs_grant=True,
        captured=True,
        correction="reason",
        framework_decision="respond",
        button=False,
        look="ask",
        consequence=lambda review: (
            "The agent gets your answer as the tool's result; nothing of this proposal runs."
        ),
        resume=_respond,
        apply=_reason_is_the_content,
    ),
)

# The order kinds list their choices in (the decision card's button order).
_ORDER = (
    "take_over",
    "done_by_person",
    "not_needed",
    "guide",
    "approve",
    "edit",
    "respond",
    "reject",
    "request_more_evidence",
    "escalate",
)

SPEC_BY_VALUE: dict[str, ChoiceSpec] = {spec.value: spec for spec in SPECS}
RESPOND, REQUEST_MORE_EVIDENCE = "respond", "request_more_evidence"

Choice = models.TextChoices(
    "Choice",
    [(spec.value.upper(), (spec.value, spec.label)) for spec in SPECS],
    module=__name__,
)


def spec_for(choice: Any) -> ChoiceSpec:
    """The spec of a choice value (KeyError for a value that is not a choice)."""
    return SPEC_BY_VALUE[str(choice)]


def default_choices(kind: str) -> list[str]:
    """The choices a review of this kind offers unless its policy narrows them."""
    return [value for value in _ORDER if kind in SPEC_BY_VALUE[value].kinds]


def possible_choices(kind: str) -> list[str]:
    """Every choice a review of this kind may offer (the defaults and the optional ones)."""
    return [
        value
        for value in _ORDER
        if kind in SPEC_BY_VALUE[value].kinds or kind in SPEC_BY_VALUE[value].optional_for
    ]


def reason_hint(offered: Iterable[str] | None = None) -> str:
    """The reason box's hint, naming the choices (of `offered`, by default all) that need one."""
    wanted = set(SPEC_BY_VALUE) if offered is None else set(offered)
    verbs = [spec.hint for spec in SPECS if spec.reason_required and spec.value in wanted]
    if not verbs:
        return "(optional)"
    listed = ", ".join(verbs[:-1]) + " or " + verbs[-1] if len(verbs) > 1 else verbs[0]
    return f"(required to {listed}; optional otherwise)"


def narrow(
    choices: Iterable[str],
    *,
    kind: str,
    allowed_decisions: Iterable[str] | None = None,
    answerable: bool = False,
) -> list[str]:
    """The choices of a review once its agent said what it can consume, in their order.

    `choices` are what the policy offers a review of `kind`. `answerable`: the agent takes
    a person's answer as the tool's result, so `respond` is added where the kind allows it
    (and never offered otherwise). `allowed_decisions` (of FRAMEWORK_DECISIONS; None: any)
    drops each choice that closes the review with a decision the agent cannot consume
    (guide closes as a response), and `request_more_evidence` (a framework has no way to
    supply evidence); the choices that keep the review with people stay. Empty when no
    closing choice is left: nothing the agent could consume would ever come back.
    """
    offered = [value for value in dict.fromkeys(choices) if value != RESPOND]
    if answerable and RESPOND in possible_choices(kind):
        later = set(_ORDER[_ORDER.index(RESPOND) + 1 :])
        at = next((i for i, value in enumerate(offered) if value in later), len(offered))
        offered.insert(at, RESPOND)
    if allowed_decisions is not None:
        allowed = set(allowed_decisions)
        offered = [
            value
            for value in offered
            if value != REQUEST_MORE_EVIDENCE
            and SPEC_BY_VALUE[value].framework_decision in (allowed | {""})
        ]
    if not any(SPEC_BY_VALUE[value].framework_decision for value in offered):
        return []
    return offered
