"""Reads of the evaluation app: export records, streaming exports, disagreement."""

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, Expression, F, OuterRef, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from reviews.choices import SPEC_BY_VALUE, SPECS
from reviews.models import Decision, ReviewRequest
from reviews.selectors.metrics import ESCALATING

from .models import DatasetItem, DatasetVersion, EvalCase

SYSTEM_PROMPT = "You are an agent proposing an action. Propose what a careful reviewer accepts."


def export_record(case: EvalCase) -> dict[str, Any]:
    """The generic record frozen into a dataset version (already redacted)."""
    return {
        "id": f"case-{case.pk}",
        "input": case.input,
        "proposal": case.proposal,
        "label": case.label,
        "reason": case.reason,
        "correction": case.correction,
        "expected": _expected(case.label, case.proposal, case.correction, case.reason),
        "provenance": case.provenance,
        "checks": {c["name"]: c["passed"] for c in case.checks},
    }


def _expected(label: str, proposal: dict, correction: dict | None, reason: str) -> dict:
    spec = SPEC_BY_VALUE.get(label)
    kind = spec.correction if spec else ""
    if kind == "edit" and correction:
        return {
            "decision": label,
            "arguments": correction.get("arguments") or proposal.get("arguments"),
            "content": correction.get("content") or proposal.get("content"),
        }
    if kind == "reason" and correction:
        return {"decision": label, "guidance": correction.get("guidance")}
    return {"decision": label, "reason": reason}


def chat_record(record: dict[str, Any]) -> dict[str, Any]:
    """The same case as an eval record of input messages and the expected output."""
    user = {
        "summary": record["input"].get("summary"),
        "arguments": record["input"].get("arguments"),
        "content": record["input"].get("content"),
        "evidence": record["input"].get("evidence"),
        "proposed_action": record["proposal"],
    }
    return {
        "id": record["id"],
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(user, sort_keys=True)},
        ],
        "expected": {
            "role": "assistant",
            "content": json.dumps(record["expected"], sort_keys=True),
        },
        "metadata": record["provenance"],
    }


def version_for(*, slug: str, number: int | None) -> DatasetVersion:
    """A dataset's version by number, or its latest; DatasetVersion.DoesNotExist if none."""
    versions = DatasetVersion.objects.select_related("dataset").filter(dataset__slug=slug)
    if number is None:
        version = versions.order_by("-number").first()
        if version is None:
            raise DatasetVersion.DoesNotExist(f"Dataset {slug} has no published version.")
        return version
    version = versions.filter(number=number).first()
    if version is None:
        raise DatasetVersion.DoesNotExist(f"Dataset {slug} has no version {number}.")
    return version


def inspect_record(record: dict[str, Any]) -> dict[str, Any]:
    """The case as an Inspect AI sample (`json_dataset` reads input, target, id, metadata):
    the chat messages as input, the reviewer's verdict as the target."""
    chat = chat_record(record)
    return {
        "id": record["id"],
        "input": chat["messages"],
        "target": chat["expected"]["content"],
        "metadata": {
            "label": record["label"],
            "reason": record["reason"],
            "expected": record["expected"],
            "proposal": record["proposal"],
            "provenance": record["provenance"],
            "checks": record["checks"],
        },
    }


def openai_record(record: dict[str, Any]) -> dict[str, Any]:
    """The case in OpenAI's chat fine-tuning and evals format: only `messages`, the
    assistant's turn being what the reviewer made of the proposal."""
    chat = chat_record(record)
    behaviour = json.dumps(_behaviour(record), ensure_ascii=False, sort_keys=True)
    return {"messages": [*chat["messages"], {"role": "assistant", "content": behaviour}]}


def _behaviour(record: dict[str, Any]) -> dict[str, Any]:
    """What the agent should have done, in the regression runner's answer shape: propose
    (as approved or as corrected), escalate, or not act and say why."""
    spec = SPEC_BY_VALUE.get(record["label"])
    proposal, expected = record["proposal"], record["expected"]
    if spec is not None and spec.escalates:
        return {"escalate": record["reason"]}
    if spec is not None and spec.correction == "edit":
        action = {"name": proposal.get("action"), "args": expected.get("arguments") or {}}
        return {"action": action, "content": expected.get("content") or ""}
    if spec is not None and spec.answer == "yes":
        action = {"name": proposal.get("action"), "args": proposal.get("arguments") or {}}
        return {"action": action, "content": proposal.get("content") or ""}
    if spec is not None and spec.correction == "reason":
        return {"action": None, "guidance": expected.get("guidance") or record["reason"]}
    return {"action": None, "reason": record["reason"]}


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, its media type and how a frozen record becomes a line
    (None: the frozen record is the line, rendered by the database)."""

    name: str
    description: str
    content_type: str
    record: Callable[[dict[str, Any]], dict[str, Any]] | None


# A new export format is one entry here: the API's `records` and the command's --format
# offer exactly these.
EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("generic", "the frozen records as they are", "application/jsonl", None),
        ExportFormat(
            "chat", "input messages and the expected reply", "application/jsonl", chat_record
        ),
        ExportFormat(
            "inspect", "Inspect AI samples (json_dataset)", "application/jsonl", inspect_record
        ),
        ExportFormat(
            "openai", "OpenAI chat fine-tuning / evals messages", "application/jsonl", openai_record
        ),
    )
}


def export_format(name: str) -> ExportFormat:
    """The registered format of that name; ValueError listing the formats otherwise."""
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        raise ValueError(
            f"Unknown export format {name!r}: use one of {', '.join(EXPORT_FORMATS)}."
        ) from None


def export_lines(*, version: DatasetVersion, fmt: str = "generic") -> Iterator[str]:
    """JSONL lines of a frozen version, read with a server-side cursor in chunks, so the
    memory used does not grow with the dataset."""
    convert = export_format(fmt).record
    items = DatasetItem.objects.filter(version=version).order_by("position")
    if convert is None:
        # The frozen record is already the line: let the database render it as text rather
        # than decoding and re-encoding every row in Python.
        texts = items.annotate(text=Cast("record", TextField())).values_list("text", flat=True)
        for text in texts.iterator(chunk_size=2000):
            yield text + "\n"
        return
    for record in items.values_list("record", flat=True).iterator(chunk_size=5000):
        yield json.dumps(convert(record), ensure_ascii=False, sort_keys=True) + "\n"


# Each slice of the disagreement tables: its key on a review, reached through `prefix`.
SLICES: dict[str, Callable[[str], Expression]] = {
    "action": lambda prefix: F(f"{prefix}action_name"),
    "rule": lambda prefix: KeyTextTransform("rule", f"{prefix}policy"),
    "agent_version": lambda prefix: KeyTextTransform("agent", f"{prefix}versions"),
}
# A decision that gives a verdict on the proposal (answers, corrects or escalates it); asking
# for evidence does not, and the review is not decided by it.
VERDICTS = frozenset(s.value for s in SPECS if s.answer or s.correction or s.escalates)
EDITS = frozenset(s.value for s in SPECS if s.correction == "edit")
REJECTIONS = frozenset(s.value for s in SPECS if s.answer == "no")


def disagreement(reviews: QuerySet[ReviewRequest] | None = None) -> dict[str, list[dict]]:
    """Where reviewers disagree with the agent: edit, rejection and escalation rates over
    every decided review (not only the captured cases, which sample the approvals), by
    action type, policy rule and agent version."""
    reviews = reviews if reviews is not None else ReviewRequest.objects.all()
    verdicts = Decision.objects.filter(review=OuterRef("pk"), choice__in=VERDICTS)
    decided = reviews.filter(Exists(verdicts))
    flags = {
        "edited": Exists(verdicts.filter(choice__in=EDITS)),
        "rejected": Exists(verdicts.filter(choice__in=REJECTIONS)),
        "escalated": Exists(verdicts.filter(choice__in=ESCALATING)),
    }
    labels = Decision.objects.filter(review__in=reviews.values("pk"), choice__in=VERDICTS)
    return {name: _rates(name, key, decided, flags, labels) for name, key in SLICES.items()}


def _rates(
    name: str,
    key_of: Callable[[str], Expression],
    decided: QuerySet[ReviewRequest],
    flags: dict[str, Exists],
    labels: QuerySet[Decision],
) -> list[dict]:
    """One slice's rows: per key, the decided reviews and the share edited, rejected and
    escalated, with the verdicts given by choice."""
    counts: dict[str, Counter] = defaultdict(Counter)
    grouped = (
        decided.annotate(key=key_of(""))
        .values("key")
        .annotate(
            reviews=Count("pk"),
            **{flag: Count("pk", filter=Q(expression)) for flag, expression in flags.items()},
        )
    )
    for row in grouped:
        # A missing rule and an empty one are the same "-" row.
        counts[row.pop("key") or "-"].update(row)
    choices: dict[str, Counter] = defaultdict(Counter)
    by_choice = labels.annotate(key=key_of("review__")).values("key", "choice")
    for row in by_choice.annotate(n=Count("pk")):
        choices[row["key"] or "-"][row["choice"]] += row["n"]
    return [
        {
            name: key,
            "reviews": c["reviews"],
            "edit_rate": round(c["edited"] / c["reviews"], 4),
            "rejection_rate": round(c["rejected"] / c["reviews"], 4),
            "escalation_rate": round(c["escalated"] / c["reviews"], 4),
            "labels": dict(choices[key]),
        }
        for key, c in sorted(counts.items())
    ]
