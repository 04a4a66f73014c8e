"""Reviewer corrections as regression tests: run an exported dataset against an agent.

    hitl-regress cases.jsonl --agent my_agent:decide [--junit out.xml] [--json]
    python -m hitl_client.regress cases.jsonl --agent my_agent:decide

The dataset is the platform's generic JSONL export (one record a line: `id`, `input`,
`proposal`, `label`, `expected`, `provenance`, ...). The agent is any callable, named
`MODULE:CALLABLE`, that gets a record's `input` and answers what it would do now:
`{"action": {"name": ..., "args": {...}}, "content": "..."}` to propose, `{"escalate": "why"}`
to hand over, or `None` to not act. Each case is scored against the reviewer's verdict by
the scorer registered for its label (`SCORERS`, `register_scorer`); exit status 1 on any
failure. Needs nothing but the standard library.
"""

import argparse
import difflib
import importlib
import json
import os
import sys
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DEFAULT_CONTENT_THRESHOLD = 0.9


@dataclass(frozen=True)
class Answer:
    """What the agent under test would do now: propose an action, escalate, or not act."""

    kind: str  # "propose", "escalate" or "none"
    action: str = ""
    args: Any = None
    content: str = ""
    why: str = ""


@dataclass(frozen=True)
class Verdict:
    """A scorer's judgement of one case."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class Options:
    """How strictly the scorers compare (content similarity, difflib's ratio, 0..1)."""

    content_threshold: float = DEFAULT_CONTENT_THRESHOLD


@dataclass(frozen=True)
class CaseResult:
    """One case's outcome, with what the summaries group it by."""

    id: str
    passed: bool
    reason: str
    label: str
    action: str
    rule: str


Scorer = Callable[[dict, Answer, Options], Verdict]
SCORERS: dict[str, Scorer] = {}


def register_scorer(*labels: str) -> Callable[[Scorer], Scorer]:
    """Make the decorated function the scorer of these reviewer labels (replacing any)."""

    def register(fn: Scorer) -> Scorer:
        for label in labels:
            SCORERS[label] = fn
        return fn

    return register


class DatasetError(ValueError):
    """The dataset file cannot be read as exported cases."""


class AgentError(ValueError):
    """The agent cannot be imported, or answered something that is not an answer."""


# --- comparing values -------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    # Money travels as strings ("20.00") and may come back as 20 or 20.0: compare as numbers.
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def differences(expected: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` differs from `expected`, field by field; numbers compared as numbers."""
    here = path or "value"
    if isinstance(expected, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(expected) | set(got), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in got:
                out.append(f"{sub}: missing, expected {expected[key]!r}")
            elif key not in expected:
                out.append(f"{sub}: not expected, got {got[key]!r}")
            else:
                out.extend(differences(expected[key], got[key], sub))
        return out
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{here}: expected {len(expected)} items, got {len(got)}"]
        out = []
        for n, (a, b) in enumerate(zip(expected, got, strict=True)):
            out.extend(differences(a, b, f"{path}[{n}]"))
        return out
    a, b = _number(expected), _number(got)
    if a is not None and b is not None:
        return [] if a == b else [f"{here}: expected {expected!r}, got {got!r}"]
    return [] if expected == got else [f"{here}: expected {expected!r}, got {got!r}"]


def similarity(a: str, b: str) -> float:
    """How alike two texts are (difflib's ratio: 1.0 is identical)."""
    return difflib.SequenceMatcher(None, a or "", b or "").ratio()


# --- the scorers ------------------------------------------------------------------------


def _original(record: dict) -> tuple[str, Any, str]:
    proposal = record.get("proposal") or {}
    return proposal.get("action") or "", proposal.get("arguments"), proposal.get("content") or ""


def _repeats(record: dict, answer: Answer) -> bool:
    action, args, _ = _original(record)
    return (
        answer.kind == "propose" and answer.action == action and not differences(args, answer.args)
    )


def _described(answer: Answer) -> str:
    if answer.kind == "escalate":
        return f"escalated ({answer.why})" if answer.why else "escalated"
    if answer.kind == "none":
        return "did not act"
    return f"proposed {answer.action}"


@register_scorer("edit")
def score_edit(record: dict, answer: Answer, options: Options) -> Verdict:
    """Passes when the new proposal carries the corrected arguments and content."""
    expected = record.get("expected") or {}
    action, original_args, original_content = _original(record)
    if answer.kind != "propose":
        return Verdict(False, f"reviewer corrected {action}; the agent {_described(answer)}")
    if answer.action != action:
        return Verdict(False, f"expected {action} with the correction, got {answer.action}")
    wanted = expected.get("arguments", original_args)
    problems = differences(wanted, answer.args)
    content = expected.get("content") or original_content
    if content:
        ratio = similarity(content, answer.content)
        if ratio < options.content_threshold:
            problems.append(
                f"content: {ratio:.2f} like the corrected text "
                f"(threshold {options.content_threshold:.2f})"
            )
    if problems:
        return Verdict(False, "does not match the correction: " + "; ".join(problems))
    return Verdict(True, "matches the reviewer's correction")


@register_scorer("reject")
def score_reject(record: dict, answer: Answer, options: Options) -> Verdict:
    """Passes when the agent no longer proposes the rejected action with those arguments."""
    action = _original(record)[0]
    if _repeats(record, answer):
        return Verdict(False, f"proposes the rejected {action} with the same arguments again")
    return Verdict(True, f"no longer proposes the rejected {action}; {_described(answer)}")


@register_scorer("escalate", "take_over")
def score_escalate(record: dict, answer: Answer, options: Options) -> Verdict:
    """Passes when the agent escalates or does not act, as the reviewer handed it over."""
    if answer.kind == "propose":
        label = record.get("label")
        return Verdict(False, f"the reviewer chose {label}; the agent proposed {answer.action}")
    return Verdict(True, _described(answer))


@register_scorer("approve")
def score_approve(record: dict, answer: Answer, options: Options) -> Verdict:
    """Passes when the agent still proposes the approved action with the same arguments."""
    action, args, _ = _original(record)
    if answer.kind != "propose":
        return Verdict(False, f"the reviewer approved {action}; the agent {_described(answer)}")
    if answer.action != action:
        return Verdict(False, f"the reviewer approved {action}; the agent proposed {answer.action}")
    problems = differences(args, answer.args)
    if problems:
        return Verdict(False, "differs from the approved proposal: " + "; ".join(problems))
    return Verdict(True, "proposes the approved action again")


@register_scorer("guide", "respond", "request_more_evidence")
def score_changed(record: dict, answer: Answer, options: Options) -> Verdict:
    """Passes when the agent, told what to change, does not repeat its original proposal."""
    content = _original(record)[2]
    same_text = similarity(content, answer.content) >= options.content_threshold
    if _repeats(record, answer) and same_text:
        return Verdict(False, "repeats the original proposal the reviewer answered")
    return Verdict(True, f"changed after the reviewer's answer; {_described(answer)}")


# --- running ----------------------------------------------------------------------------


def load_dataset(path: str | Path) -> list[dict]:
    """The records of an exported generic JSONL file (blank lines skipped)."""
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict) or "label" not in record or "input" not in record:
                    raise DatasetError(f"{path}:{number}: not an exported case (label, input)")
                records.append(record)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
    return records


def load_callable(spec: str) -> Callable:
    """`MODULE:CALLABLE` imported by name (dots after the colon reach attributes)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AgentError(f"expected MODULE:CALLABLE, got {spec!r}")
    # A console script does not put the working directory on the path; agents live there.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise AgentError(f"cannot import {spec}: {exc}") from None
    if not callable(target):
        raise AgentError(f"{spec} is not callable")
    return target


def parse_answer(raw: Any) -> Answer:
    """The agent's return value as an Answer; AgentError when it is none of the shapes."""
    if raw is None:
        return Answer("none")
    if isinstance(raw, dict) and "escalate" in raw:
        return Answer("escalate", why=str(raw["escalate"] or ""))
    if isinstance(raw, dict) and isinstance(raw.get("action"), dict):
        action = raw["action"]
        name = action.get("name")
        if not isinstance(name, str) or not name:
            raise AgentError("the proposed action has no name")
        return Answer("propose", name, action.get("args") or {}, str(raw.get("content") or ""))
    raise AgentError(f"not a proposal, an escalation or None: {raw!r}"[:300])


def score_case(record: dict, agent: Callable, options: Options = Options()) -> CaseResult:
    """Run the agent on one case and judge its answer with the label's scorer."""
    label = str(record.get("label") or "")
    provenance = record.get("provenance") or {}
    action = _original(record)[0] or provenance.get("action") or "-"
    rule = provenance.get("policy_rule") or "-"
    result = {"id": str(record.get("id")), "label": label, "action": action, "rule": rule}
    scorer = SCORERS.get(label)
    if scorer is None:
        return CaseResult(passed=False, reason=f"no scorer for label {label!r}", **result)
    try:
        answer = parse_answer(agent(record["input"]))
    except AgentError as exc:
        return CaseResult(passed=False, reason=f"agent answered badly: {exc}", **result)
    except Exception as exc:
        # The agent's bug is this case's failure, not the end of the run.
        reason = f"agent raised {type(exc).__name__}: {exc}"
        return CaseResult(passed=False, reason=reason, **result)
    verdict = scorer(record, answer, options)
    return CaseResult(passed=verdict.passed, reason=verdict.reason, **result)


def run(records: Iterable[dict], agent: Callable, options: Options = Options()) -> list[CaseResult]:
    """Every case's result, in the dataset's order."""
    return [score_case(record, agent, options) for record in records]


# --- reports ----------------------------------------------------------------------------


def as_json(results: list[CaseResult]) -> dict:
    """The --json report: counts and each case's id, outcome and reason."""
    passed = sum(r.passed for r in results)
    return {
        "passed": passed,
        "failed": len(results) - passed,
        "cases": [{"id": r.id, "passed": r.passed, "reason": r.reason} for r in results],
    }


def summary(results: list[CaseResult], by: str) -> list[tuple[str, int, int]]:
    """(key, passed, failed) per action or per policy rule (`by`: "action" or "rule")."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for result in results:
        counts[getattr(result, by)][result.passed] += 1
    return [(key, c[True], c[False]) for key, c in sorted(counts.items())]


def as_text(results: list[CaseResult]) -> str:
    """The console report: a line per case, then the summaries per action and rule."""
    lines = [f"{'PASS' if r.passed else 'FAIL'} {r.id} [{r.label}] {r.reason}" for r in results]
    for title, by in (("action", "action"), ("policy rule", "rule")):
        lines.append(f"\nper {title}:")
        lines.extend(f"  {key}: {ok} passed, {bad} failed" for key, ok, bad in summary(results, by))
    report = as_json(results)
    lines.append(f"\n{report['passed']} passed, {report['failed']} failed")
    return "\n".join(lines)


def junit_xml(results: list[CaseResult], name: str = "hitl-regress") -> str:
    """A JUnit XML report: one testcase per case, classname by action."""
    failures = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite", name=name, tests=str(len(results)), failures=str(failures), errors="0"
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{r.action}", name=r.id)
        properties = ET.SubElement(case, "properties")
        for key in ("label", "rule"):
            ET.SubElement(properties, "property", name=key, value=getattr(r, key))
        if r.passed:
            ET.SubElement(case, "system-out").text = r.reason
        else:
            ET.SubElement(case, "failure", message=r.reason, type=r.label).text = r.reason
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)


# --- command line -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hitl-regress",
        description="Run reviewer corrections (an exported dataset) against an agent.",
    )
    parser.add_argument("dataset", help="The exported generic JSONL file.")
    parser.add_argument("--agent", required=True, help="MODULE:CALLABLE of the agent under test.")
    parser.add_argument("--junit", metavar="OUT.xml", help="Also write a JUnit XML report.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    parser.add_argument(
        "--content-threshold",
        type=float,
        default=DEFAULT_CONTENT_THRESHOLD,
        help="How alike corrected and new content must be (0..1, default %(default)s).",
    )
    parser.add_argument(
        "--scorer",
        action="append",
        default=[],
        metavar="LABEL=MODULE:CALLABLE",
        help="Score a label with your own scorer(record, answer, options) -> Verdict.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """The console script: 0 when every case passes, 1 on any failure, 2 on bad input."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.content_threshold <= 1.0:
        parser.error("--content-threshold must be between 0 and 1")
    try:
        for spec in args.scorer:
            label, _, target = spec.partition("=")
            register_scorer(label)(load_callable(target))
        agent = load_callable(args.agent)
        records = load_dataset(args.dataset)
    except (AgentError, DatasetError) as exc:
        parser.exit(2, f"hitl-regress: {exc}\n")
    if not records:
        parser.exit(2, f"hitl-regress: no cases in {args.dataset}\n")
    results = run(records, agent, Options(content_threshold=args.content_threshold))
    if args.junit:
        Path(args.junit).write_text(junit_xml(results), encoding="utf-8")
    print(json.dumps(as_json(results)) if args.json else as_text(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
