"""Reads of the evaluation app: export records, streaming exports, disagreement."""

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast

from reviews.choices import SPEC_BY_VALUE
from reviews.selectors.metrics import ESCALATING

from .models import DatasetItem, DatasetVersion, EvalCase

FORMATS = ("generic", "chat")
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


def export_lines(*, version: DatasetVersion, fmt: str = "generic") -> Iterator[str]:
    """JSONL lines of a frozen version, read with a server-side cursor in chunks, so the
    memory used does not grow with the dataset."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    items = DatasetItem.objects.filter(version=version).order_by("position")
    if fmt == "generic":
        # The frozen record is already the line: let the database render it as text rather
        # than decoding and re-encoding every row in Python.
        texts = items.annotate(text=Cast("record", TextField())).values_list("text", flat=True)
        for text in texts.iterator(chunk_size=2000):
            yield text + "\n"
        return
    for record in items.values_list("record", flat=True).iterator(chunk_size=5000):
        yield json.dumps(chat_record(record), ensure_ascii=False, sort_keys=True) + "\n"


def disagreement(queryset: QuerySet[EvalCase] | None = None) -> dict[str, list[dict]]:
    """Where reviewers disagree with the agent: edit and rejection rates among captured
    cases, by action type, policy rule and agent version."""
    cases = (queryset if queryset is not None else EvalCase.objects.all()).values_list(
        "action_name", "label", "provenance"
    )
    groups: dict[str, dict[str, Counter]] = {
        "action": defaultdict(Counter),
        "rule": defaultdict(Counter),
        "agent_version": defaultdict(Counter),
    }
    for action, label, provenance in cases:
        keys = {
            "action": action,
            "rule": (provenance or {}).get("policy_rule") or "-",
            "agent_version": ((provenance or {}).get("versions") or {}).get("agent") or "-",
        }
        for name, key in keys.items():
            groups[name][key][label] += 1
    out = {}
    for name, by_key in groups.items():
        rows = []
        for key, counts in sorted(by_key.items()):
            total = sum(counts.values())
            rows.append(
                {
                    name: key,
                    "cases": total,
                    "edit_rate": round(counts["edit"] / total, 4),
                    "rejection_rate": round(counts["reject"] / total, 4),
                    "escalation_rate": round(sum(counts[c] for c in ESCALATING) / total, 4),
                    "labels": dict(counts),
                }
            )
        out[name] = rows
    return out
