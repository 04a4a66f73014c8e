"""The regression runner: scoring, reports, the console script and the pytest plugin."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from hitl_client import regress

from . import regress_agents

FIXTURE = Path(__file__).parent / "fixtures" / "refunds.jsonl"
ROOT = Path(__file__).resolve().parents[2]
APPROVALS = {"case-1", "case-2"}
CORRECTIONS = {"case-3", "case-4", "case-5", "case-6", "case-7"}


@pytest.fixture
def records():
    return regress.load_dataset(FIXTURE)


def outcomes(results):
    return {r.id for r in results if r.passed}, {r.id for r in results if not r.passed}


def test_an_agent_repeating_its_proposals_fails_exactly_the_corrections(records):
    passed, failed = outcomes(regress.run(records, regress_agents.repeat))
    assert passed == APPROVALS
    assert failed == CORRECTIONS


def test_an_agent_doing_what_reviewers_wanted_passes_all(records):
    results = regress.run(records, regress_agents.careful)
    assert all(r.passed for r in results), [r.reason for r in results if not r.passed]
    assert len(results) == 7


def test_an_edit_matches_field_by_field_with_numbers_as_numbers(records):
    edit = next(r for r in records if r["label"] == "edit")
    corrected = edit["expected"]

    def agent(args, content=corrected["content"]):
        return lambda _: {"action": {"name": "issue_refund", "args": args}, "content": content}

    same = dict(corrected["arguments"], amount=Decimal("15"))
    assert regress.score_case(edit, agent(same)).passed
    assert regress.score_case(edit, agent(dict(same, amount=15.0))).passed
    wrong = regress.score_case(edit, agent(dict(same, currency="USD")))
    assert not wrong.passed and "currency: expected 'EUR', got 'USD'" in wrong.reason
    extra = regress.score_case(edit, agent(dict(same, note="x")))
    assert "note: not expected" in extra.reason
    # Content is compared by similarity, with a threshold the caller sets.
    close = agent(same, corrected["content"].replace("refundable", "refunded"))
    assert regress.score_case(edit, close).passed
    assert not regress.score_case(edit, close, regress.Options(content_threshold=1.0)).passed
    assert "content: 0." in regress.score_case(edit, agent(same, "Done.")).reason


def test_a_rejection_passes_when_the_arguments_or_the_action_change(records):
    reject = next(r for r in records if r["label"] == "reject")
    args = reject["proposal"]["arguments"]
    smaller = {"action": {"name": "issue_refund", "args": dict(args, amount="10.00")}}
    assert regress.score_case(reject, lambda _: smaller).passed
    assert regress.score_case(reject, lambda _: {"escalate": "unsure"}).passed
    same_as_number = {"action": {"name": "issue_refund", "args": dict(args, amount=30)}}
    assert not regress.score_case(reject, lambda _: same_as_number).passed


def test_a_bad_agent_fails_its_case_with_the_reason(records):
    results = regress.run(records[:1], regress_agents.broken)
    assert results[0].reason == "agent raised RuntimeError: the model timed out"
    odd = regress.score_case(records[0], lambda _: {"act": "now"})
    assert not odd.passed and odd.reason.startswith("agent answered badly")
    unknown = regress.score_case(dict(records[0], label="shrug"), regress_agents.repeat)
    assert (unknown.passed, unknown.reason) == (False, "no scorer for label 'shrug'")


def test_scorers_are_pluggable(records, monkeypatch):
    monkeypatch.setattr(regress, "SCORERS", dict(regress.SCORERS))

    @regress.register_scorer("approve")
    def judge(record, answer, options):
        return regress.Verdict(answer.kind == "escalate", "the judge wants escalations")

    failed = outcomes(regress.run(records, regress_agents.repeat))[1]
    assert failed >= APPROVALS


def test_reports_summarise_per_action_and_rule(records):
    results = regress.run(records, regress_agents.repeat)
    assert regress.summary(results, "rule") == [("refunds-any", 1, 1), ("refunds-over-10", 1, 4)]
    text = regress.as_text(results)
    assert "FAIL case-4 [reject] proposes the rejected issue_refund" in text
    assert "issue_refund: 2 passed, 5 failed" in text
    xml = regress.junit_xml(results)
    assert failures(xml) == CORRECTIONS
    assert '<testsuite name="hitl-regress" tests="7" failures="5"' in xml


def python(*args, cwd=ROOT):
    """`python ARGS...` in `cwd`, with this repository importable (as an installed client)."""
    return subprocess.run(  # noqa: S603 - fixed argv, our own modules
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def hitl_regress(*args, cwd=ROOT):
    return python("-m", "hitl_client.regress", *args, cwd=cwd)


def failures(xml_text):
    suite = ET.fromstring(xml_text)  # noqa: S314 - the report we just wrote
    return {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}


def test_the_console_script_exit_codes_json_and_junit(tmp_path):
    agent = "hitl_client.tests.regress_agents"
    junit = tmp_path / "j.xml"
    bad = hitl_regress(FIXTURE, "--agent", f"{agent}:repeat", "--json", "--junit", junit)
    assert bad.returncode == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert (report["passed"], report["failed"]) == (2, 5)
    assert {c["id"] for c in report["cases"] if not c["passed"]} == CORRECTIONS
    assert set(report["cases"][0]) == {"id", "passed", "reason"}
    assert failures(junit.read_text()) == CORRECTIONS

    good = hitl_regress(FIXTURE, "--agent", f"{agent}:careful")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.rstrip().endswith("7 passed, 0 failed")

    missing = hitl_regress(tmp_path / "none.jsonl", "--agent", f"{agent}:careful")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    no_agent = hitl_regress(FIXTURE, "--agent", "nowhere:agent")
    assert no_agent.returncode == 2 and "cannot import nowhere:agent" in no_agent.stderr


def test_the_console_script_finds_an_agent_in_the_working_directory(tmp_path):
    (tmp_path / "my_agent.py").write_text("def decide(case_input):\n    return None\n")
    done = hitl_regress(FIXTURE, "--agent", "my_agent:decide", "--json", cwd=tmp_path)
    # Not acting passes the rejection, the hand-overs and the guidance; it fails the rest.
    passed = {c["id"] for c in json.loads(done.stdout)["cases"] if c["passed"]}
    assert passed == {"case-4", "case-5", "case-6", "case-7"}


def run_plugin(tmp_path, agent, *extra):
    # A directory with no tests and no configuration: the plugin makes the items itself.
    return python(
        "-m", "pytest", "-p", "hitl_client.pytest_plugin", "-p", "no:cacheprovider",
        "--rootdir", tmp_path, "-c", os.devnull, "--hitl-dataset", FIXTURE,
        "--hitl-agent", f"hitl_client.tests.regress_agents:{agent}", *extra,
        cwd=tmp_path,
    )  # fmt: skip


def test_the_pytest_plugin_makes_one_test_per_case(tmp_path):
    xml = tmp_path / "junit.xml"
    bad = run_plugin(tmp_path, "repeat", f"--junitxml={xml}")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "5 failed, 2 passed" in bad.stdout
    assert "[reject] proposes the rejected issue_refund" in bad.stdout
    assert failures(xml.read_text()) == CORRECTIONS

    good = run_plugin(tmp_path, "careful")
    assert good.returncode == 0 and "7 passed" in good.stdout, good.stdout + good.stderr
    one = run_plugin(tmp_path, "repeat", "-k", "case-4")
    assert "1 failed, 6 deselected" in one.stdout, one.stdout


def test_the_console_script_takes_a_scorer_of_ones_own(monkeypatch, capsys):
    monkeypatch.setattr(regress, "SCORERS", dict(regress.SCORERS))
    agents = "hitl_client.tests.regress_agents"
    status = regress.main(
        [str(FIXTURE), "--agent", f"{agents}:careful", "--json",
         "--scorer", f"approve={agents}:strict_judge"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert {c["id"] for c in report["cases"] if not c["passed"]} == APPROVALS
