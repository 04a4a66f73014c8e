"""The example agents of both frameworks, each in its own processes, against the deployed
product: LangChain/LangGraph (HumanInTheLoopMiddleware) and the OpenAI Agents SDK.

Each proposes `issue_refund` and `send_email` in one model turn, as one batch; resuming
before anyone decides exits 3; a reviewer edits the refund's amount and rejects the email
through the API; the next resume runs the refund with the edited amount (the platform's
executor runs it) and the model sees the rejection's reason; a second resume runs nothing.
"""

import json
import subprocess
import tempfile
import time
from pathlib import Path

from smoke_http import PYTHON, TAG, Client, TlsProxy, check, manage, shorten

EDITED_AMOUNT = "15.00"
NO_EMAIL = "The customer asked us not to email them."


def example(name: str, command: str, base: str, key: str, run_id: str, workdir: Path):
    """One run of an example's command line: (exit code, its JSON answer)."""
    arguments = ["--base", base, "--key", key, "--run", run_id, "--workdir", str(workdir)]
    proc = subprocess.run(  # noqa: S603 - our own example with fixed arguments
        [PYTHON, "-m", f"examples.{name}", command, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {}
    if proc.returncode not in (0, 3):
        check(False, f"{name} {command} ran", f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.returncode, answer


def new_agent(name: str) -> str:
    out = manage("create_agent", f"{name}-{TAG}")
    return [line.strip() for line in out.splitlines() if line.strip()][-1]


def decide_batch(reviewer: Client, review_ids: list[str]) -> None:
    """The reviewer edits the refund's amount and rejects the email, through the API."""
    for review_id in review_ids:
        packet, _ = reviewer.expect(200, "GET", f"/api/v1/reviews/{review_id}/")
        action = packet["proposed_action"]
        if action["name"] == "issue_refund":
            body = {
                "choice": "edit",
                "arguments": {**action["args"], "amount": EDITED_AMOUNT},
                "reason": "Half the order was fine; refund the broken mug only.",
            }
        else:
            body = {"choice": "reject", "reason": NO_EMAIL}
        reviewer.expect(201, "POST", f"/api/v1/reviews/{review_id}/decisions/", body)


def check_framework(name: str, reviewer: Client, proxy: TlsProxy, deadline: float) -> None:
    key, run_id = new_agent(name.replace("_", "-")), f"{name}-{TAG}"
    workdir = Path(tempfile.mkdtemp(prefix=f"smoke-{name}-"))
    code, paused = example(name, "propose", proxy.url, key, run_id, workdir)
    check(
        code == 0 and paused.get("paused") and len(paused.get("review_ids") or []) == 2,
        f"{name}: one model turn proposed as one batch, two reviews",
        shorten(paused),
    )
    code, _ = example(name, "resume", proxy.url, key, run_id, workdir)
    check(code == 3, f"{name}: resume before the decisions exits 3", f"exit {code}")
    decide_batch(reviewer, paused["review_ids"])
    while True:
        # The platform's executor runs the refund in the worker; until then resume says 3.
        code, done = example(name, "resume", proxy.url, key, run_id, workdir)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    refunds = [e for e in done.get("executed", []) if e.get("tool") == "issue_refund"]
    check(
        code == 0 and len(refunds) == 1 and refunds[0]["args"]["amount"] == EDITED_AMOUNT,
        f"{name}: the refund ran once, with the reviewer's amount {EDITED_AMOUNT}",
        shorten(done),
    )
    rejected = done.get("rejected", [])
    check(
        [r["tool"] for r in rejected] == ["send_email"] and NO_EMAIL in rejected[0]["reason"],
        f"{name}: the email was rejected with the reviewer's reason",
        shorten(done),
    )
    saw = json.dumps(done.get("model_saw") or _read(workdir / "model_saw.json"))
    check(NO_EMAIL in saw, f"{name}: the model saw the rejection's reason", saw[:500])
    code, again = example(name, "resume", proxy.url, key, run_id, workdir)
    check(
        code == 0 and again.get("executed") == [],
        f"{name}: a second resume executes nothing again",
        shorten(again),
    )


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else {}


def check_frameworks(reviewer: Client, deadline: float) -> None:
    proxy = TlsProxy()
    for name in ("langchain_agent", "openai_agents"):
        check_framework(name, reviewer, proxy, deadline)
