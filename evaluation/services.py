"""Writes of the evaluation app: capture, checks, curation, datasets, tenants' consent."""

import hashlib
import json
import logging
import re
import string
from collections.abc import Iterable
from datetime import timedelta
from difflib import SequenceMatcher

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from hitl.db import for_update
from hitl.kernel import Actor, as_actor, stamp
from policies.models import Tenant
from reviews.choices import SPEC_BY_VALUE, Choice, spec_for
from reviews.models import Decision, ReviewState

from .models import (
    CaptureOutcome,
    CaseStatus,
    Dataset,
    DatasetItem,
    DatasetVersion,
    DecisionCapture,
    EvalCase,
    TenantEvaluationSetting,
)
from .privacy import Redactor

BOILERPLATE = {
    "",
    "ok",
    "okay",
    "no",
    "nope",
    "yes",
    "rejected",
    "reject",
    "escalate",
    "escalated",
    "bad",
    "wrong",
    "n/a",
    "na",
    "none",
    "test",
    "asdf",
    "see above",
    "as discussed",
    "-",
}


logger = logging.getLogger(__name__)


class EvaluationError(Exception):
    """A curation request that cannot be done, with the reason to show."""


# --- capture ----------------------------------------------------------------------------


def capture_decision(*, decision_id: int) -> EvalCase | None:
    """Turn one decision into a candidate case (idempotent); None when it is not captured:
    not a correction, an approval outside the sample, or a tenant that opted out."""
    with transaction.atomic(durable=True):
        decision = (
            Decision.objects.select_related("review__run__agent", "reviewer")
            .filter(pk=decision_id)
            .first()
        )
        if decision is None:
            return None
        if DecisionCapture.objects.filter(decision_id=decision_id).exists():
            return EvalCase.objects.filter(decision_id=decision_id).first()
        review = decision.review
        verdict = spec_for(decision.choice).answer
        if verdict and decision.state_after != decision.state_before:
            _mark_contradicted(
                run_id=review.run.run_id,
                action_name=review.action_name,
                verdict=verdict,
                by=f"{decision.choice} in review {review.review_id}",
                before=decision.decided_at,
            )
        case = None
        if not _wanted(decision):
            outcome = CaptureOutcome.SKIPPED
        elif not _tenant_allows(review.tenant):
            outcome = CaptureOutcome.OPTED_OUT
        else:
            case = _new_case(decision)
            outcome = CaptureOutcome.CAPTURED
        try:
            # A second worker on the same decision (the task and the backfill) loses here
            # and rolls back its copy of the same work.
            with transaction.atomic():
                DecisionCapture.objects.create(decision=decision, outcome=outcome)
                if case is not None:
                    case.save()
        except IntegrityError:
            return EvalCase.objects.filter(decision_id=decision_id).first()
    return case


def _new_case(decision: Decision) -> EvalCase:
    review = decision.review
    redactor = Redactor()
    evidence = [
        {"title": e.title, "excerpt": e.excerpt, "url": e.url} for e in review.evidence.all()
    ]
    correction = _correction(decision)
    time_spent = decision.time_spent.total_seconds() if decision.time_spent else None
    case = EvalCase(
        decision=decision,
        review_id=review.review_id,
        run_id=review.run.run_id,
        tenant=review.tenant,
        action_name=review.action_name,
        target_system=review.target_system,
        label=decision.choice,
        reason=redactor.text(decision.reason),
        input=redactor.value(
            {
                "summary": review.summary,
                "arguments": review.arguments,
                "content": review.content,
                "evidence": evidence,
                "uncertainty": review.uncertainty,
            }
        ),
        proposal=redactor.value(
            {
                "action": review.action_name,
                "target_system": review.target_system,
                "arguments": review.arguments,
                "content": review.content,
                "consequence": review.consequence,
            }
        ),
        correction=redactor.value(correction) if correction is not None else None,
        provenance=_provenance(decision, time_spent),
        pii_found=dict(redactor.found),
    )
    case.similarity_key = _similarity_key(case)
    case.checks = _checks(case, decision, time_spent)
    case.failed_checks = [c["name"] for c in case.checks if not c["passed"]]
    stamp(case, Actor.system("evaluation"), "captured")
    return case


def _correction(decision: Decision) -> dict | None:
    """What the reviewer corrected, as the choice's spec says it corrects."""
    kind = spec_for(decision.choice).correction
    if kind == "edit":
        return {"arguments": decision.edited_arguments, "content": decision.edited_content}
    if kind == "reason":
        return {"guidance": decision.reason}
    return None


def _provenance(decision: Decision, time_spent: float | None) -> dict:
    """Where a case came from: the run, the versions, the rule and the reviewer."""
    review = decision.review
    return {
        "review_id": review.review_id,
        "run_id": review.run.run_id,
        "agent": review.run.agent.name,
        "action": review.action_name,
        "versions": {
            name: review.versions.get(name, "") for name in ("agent", "model", "prompt", "policy")
        },
        "policy_rule": (review.policy or {}).get("rule"),
        "reviewer": decision.reviewer.get_username(),
        "decided_at": decision.decided_at.isoformat(),
        "time_spent_seconds": time_spent,
    }


def backfill(*, limit: int | None = 1000, settle: timedelta = timedelta(minutes=2)) -> int:
    """Capture every decision that never went through capture (a task that failed or was
    lost, or the demo's history); returns how many cases it made. Decisions younger than
    `settle` are left to their own task, which is normally still on its way."""
    pending = Decision.objects.filter(
        capture__isnull=True, decided_at__lte=timezone.now() - settle
    ).order_by("decided_at", "id")
    made = 0
    for decision_id in pending.values_list("pk", flat=True)[:limit]:
        try:
            made += capture_decision(decision_id=decision_id) is not None
        except Exception:
            # One decision that cannot be captured must not hold up the others; it has no
            # ledger row, so the next run tries it again, and the log says why.
            logger.exception(
                "capturing decision %s failed; the next backfill retries it", decision_id
            )
    return made


def _answer(choice: str) -> str:
    """The answer a choice gave to "may this action happen?" ("" when none)."""
    spec = SPEC_BY_VALUE.get(choice)
    return spec.answer if spec else ""


def _wanted(decision: Decision) -> bool:
    if spec_for(decision.choice).captured:
        return True
    if decision.choice != Choice.APPROVE or decision.state_after != ReviewState.APPROVED:
        return False
    rate = float(settings.HITL_EVAL_APPROVAL_SAMPLE)
    # A stable sample: the same review is always in or out, whatever the worker.
    bucket = int(hashlib.sha256(decision.review.review_id.encode()).hexdigest()[:8], 16)
    return bucket / 0xFFFFFFFF < rate


def _tenant_allows(tenant: str) -> bool:
    setting = TenantEvaluationSetting.objects.filter(tenant=tenant).first()
    return setting is None or setting.allow_evaluation


# --- quality checks ---------------------------------------------------------------------


def _check(name: str, passed: bool, reason: str) -> dict:
    return {"name": name, "passed": passed, "reason": reason}


def _checks(case: EvalCase, decision: Decision, time_spent: float | None) -> list[dict]:
    threshold = float(settings.HITL_EVAL_MIN_SECONDS)
    checks = []
    if time_spent is None:
        checks.append(_check("had_context", False, "time spent unknown (not opened in a screen)"))
    else:
        checks.append(
            _check(
                "had_context",
                time_spent >= threshold,
                f"{time_spent:.0f} s on the review (at least {threshold:.0f} s needed)",
            )
        )
    if decision.choice == Choice.APPROVE:
        checks.append(_check("real_reason", True, "approvals need no reason"))
    else:
        reason = " ".join(decision.reason.lower().split()).strip(string.punctuation + " ")
        real = len(reason) >= 8 and reason not in BOILERPLATE
        checks.append(
            _check(
                "real_reason",
                real,
                "a specific reason" if real else f"boilerplate or too short: {decision.reason!r}",
            )
        )
    if spec_for(decision.choice).correction == "edit":
        before = _skeleton(case.proposal.get("content") or "", case.proposal.get("arguments"))
        after = _skeleton(
            (case.correction or {}).get("content") or "", (case.correction or {}).get("arguments")
        )
        trivial = before == after
        checks.append(
            _check(
                "non_trivial_edit",
                not trivial,
                "only whitespace or punctuation changed" if trivial else "the meaning changed",
            )
        )
    else:
        checks.append(_check("non_trivial_edit", True, "not an edit"))
    checks.append(_check("not_contradicted", True, "no later decision on this run disagrees"))
    duplicate = _near_duplicate(case)
    checks.append(
        _check(
            "not_duplicate",
            duplicate is None,
            f"near-duplicate of case {duplicate}" if duplicate else "no similar case",
        )
    )
    return checks


def _skeleton(content: str, arguments) -> str:
    text = content + repr(sorted((arguments or {}).items()))
    return re.sub(rf"[\s{re.escape(string.punctuation)}]+", "", text).lower()


def _similarity_key(case: EvalCase) -> str:
    parts = [
        case.input.get("summary") or "",
        case.input.get("content") or "",
        repr(sorted((case.input.get("arguments") or {}).items())),
    ]
    return " ".join(" ".join(parts).lower().split())[:2000]


def _near_duplicate(case: EvalCase) -> int | None:
    threshold = float(settings.HITL_EVAL_DUPLICATE_SIMILARITY)
    recent = (
        # Within the tenant: another customer's case is no reason to drop this one.
        EvalCase.objects.filter(tenant=case.tenant, action_name=case.action_name, label=case.label)
        .exclude(status=CaseStatus.DISCARDED)
        .order_by("-created_at")
        .values_list("pk", "similarity_key")[:200]
    )
    for pk, key in recent:
        matcher = SequenceMatcher(None, key, case.similarity_key, autojunk=False)
        if matcher.real_quick_ratio() >= threshold and matcher.ratio() >= threshold:
            return pk
    return None


def _mark_contradicted(*, run_id: str, action_name: str, verdict: str, by: str, before) -> None:
    """A later decision on the same run and action that says the opposite (go ahead vs
    stop) makes the earlier cases unreliable."""
    earlier = (
        for_update(EvalCase.objects.all())
        .filter(
            run_id=run_id, action_name=action_name, provenance__decided_at__lt=before.isoformat()
        )
        # One lock order for every worker, so two captures on one run never deadlock.
        .order_by("pk")
    )
    for case in earlier:
        if _answer(case.label) in ("", verdict) or "not_contradicted" in case.failed_checks:
            continue
        for check in case.checks:
            if check["name"] == "not_contradicted":
                check["passed"] = False
                check["reason"] = f"contradicted by {by}"
        case.failed_checks = [c["name"] for c in case.checks if not c["passed"]]
        stamp(case, Actor.system("evaluation"), "contradicted by a later decision")
        case.save(update_fields=["checks", "failed_checks"])


# --- curation ---------------------------------------------------------------------------


def case_accept(*, case_id: int, actor: AbstractBaseUser, note: str = "") -> EvalCase:
    """Accept a candidate whose checks all passed; a failed case never joins a dataset."""
    with transaction.atomic():
        case = for_update(EvalCase.objects.all()).get(pk=case_id)
        if case.failed_checks:
            raise EvaluationError(
                f"Case {case.pk} failed {', '.join(case.failed_checks)} and cannot be accepted."
            )
        return _curate(case, actor, CaseStatus.ACCEPTED, note)


def case_discard(*, case_id: int, actor: AbstractBaseUser, note: str = "") -> EvalCase:
    """Discard a case (it stays, for the record, but joins no dataset)."""
    with transaction.atomic():
        case = for_update(EvalCase.objects.all()).get(pk=case_id)
        return _curate(case, actor, CaseStatus.DISCARDED, note)


def _curate(case: EvalCase, actor, status: str, note: str) -> EvalCase:
    case.status = status
    case.curated_by = actor
    case.curated_at = timezone.now()
    case.curation_note = note
    stamp(case, Actor.of_user(actor), f"{status}: {note}" if note else status)
    case.save()
    return case


def dataset_publish(
    *, dataset: Dataset, actor: AbstractBaseUser | None, note: str = ""
) -> DatasetVersion:
    """Freeze the dataset's accepted cases into its next version."""
    from .selectors import export_record

    with transaction.atomic():
        locked = for_update(Dataset.objects.all()).get(pk=dataset.pk)
        cases = EvalCase.objects.filter(status=CaseStatus.ACCEPTED, failed_checks=[]).order_by(
            "created_at", "id"
        )
        if not locked.all_tenants:
            cases = cases.filter(tenant=locked.tenant)
        if locked.action_names:
            cases = cases.filter(action_name__in=locked.action_names)
        cases = list(cases)
        if not cases:
            raise EvaluationError(f"No accepted cases to publish in {locked.slug}.")
        records = [(case.pk, export_record(case)) for case in cases]
        latest = locked.versions.order_by("-number").first()
        if latest is not None and _frozen_records(latest) == _comparable(records):
            # A second identical version would only make evaluations cite two names for
            # the same data.
            raise EvaluationError(
                f"Nothing changed in {locked.slug} since {latest}: the same {len(cases)} "
                "accepted case(s). Accept or discard cases, then publish."
            )
        version = DatasetVersion.objects.create(
            dataset=locked,
            number=(latest.number if latest else 0) + 1,
            case_count=len(cases),
            note=note,
            published_by=actor,
        )
        DatasetItem.objects.bulk_create(
            DatasetItem(version=version, case_id=case_id, position=i, record=record)
            for i, (case_id, record) in enumerate(records)
        )
    return version


def _frozen_records(version: DatasetVersion) -> list[tuple[int, str]]:
    """A published version's cases and records, in their order, comparable as text."""
    return _comparable(version.items.order_by("position").values_list("case_id", "record"))


def _comparable(records) -> list[tuple[int, str]]:
    # As JSON text: a record read back from the database and one just built compare equal.
    return [
        (case_id, json.dumps(record, sort_keys=True, default=str)) for case_id, record in records
    ]


def dataset_create(
    *,
    slug: str,
    name: str,
    action_names: Iterable[str] = (),
    tenant: str = "",
    all_tenants: bool = False,
    actor: AbstractBaseUser | Actor | None = None,
) -> Dataset:
    """A new, empty dataset of one tenant's cases (or, when an admin asks, every tenant's);
    publish a version to freeze cases into it."""
    dataset = Dataset(
        slug=slug,
        name=name,
        action_names=list(action_names),
        tenant=tenant,
        all_tenants=all_tenants,
    )
    with transaction.atomic():
        return _dataset_store(dataset, as_actor(actor, system="evaluation"))


def dataset_save(*, actor: AbstractBaseUser, dataset: Dataset) -> Dataset:
    """Create or change a dataset's definition, validated; whether it mixes tenants' cases
    is a platform admin's call, never a curator's."""
    with transaction.atomic():
        stored = None
        if dataset.pk is not None:
            stored = for_update(Dataset.objects.all()).filter(pk=dataset.pk).first()
        mixed = stored.all_tenants if stored is not None else False
        if dataset.all_tenants != mixed and not actor.is_superuser:
            raise EvaluationError(
                "Only a platform administrator decides whether a dataset mixes tenants' cases."
            )
        return _dataset_store(dataset, Actor.of_user(actor))


def _dataset_store(dataset: Dataset, actor: Actor) -> Dataset:
    names = dataset.action_names
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValidationError({"action_names": 'A list of action names: ["issue_refund"].'})
    dataset.action_names = sorted(set(names))
    dataset.full_clean()
    stamp(dataset, actor, "settings changed" if dataset.pk else "created")
    dataset.save()
    return dataset


# --- tenants' consent -------------------------------------------------------------------


def tenant_evaluation_setting_save(
    *, actor: AbstractBaseUser, setting: TenantEvaluationSetting
) -> TenantEvaluationSetting:
    """Record whether a tenant's reviews may become evaluation data; validated and audited."""
    with transaction.atomic():
        if setting.pk is not None:
            # Two admins saving one setting: the second waits, and its row comes after.
            for_update(TenantEvaluationSetting.objects.filter(pk=setting.pk)).first()
        if not Tenant.exists(setting.tenant):
            raise ValidationError({"tenant": f"No tenant {setting.tenant!r}: create it first."})
        setting.full_clean()
        verdict = "allowed" if setting.allow_evaluation else "turned off"
        tenant = setting.tenant or "the default tenant"
        stamp(setting, Actor.of_user(actor), f"evaluation {verdict} for {tenant}")
        setting.save()
    return setting
