"""Command line of the LangChain example: propose, or resume in a new process.

`propose` prints {"paused": true, "run_id", "review_ids"}. `resume` prints {"done": true,
"executed": [...], "rejected": [...], "model_saw": {tool_call_id: text}} and exits 0, or
exits 3 while a call is still undecided (or the platform has not finished running it); once
the run is finished it executes nothing and lists nothing.
"""

import argparse
import json
import sys
from pathlib import Path

from hitl_client import HitlClient, HitlError, NotResumable

from . import agent

UNDECIDED = 3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["propose", "resume"])
    parser.add_argument("--base", required=True, help="the platform's URL")
    parser.add_argument("--key", required=True, help="the agent's API key")
    parser.add_argument("--run", required=True, help="the run id")
    parser.add_argument("--workdir", required=True, type=Path, help="where the graph is kept")
    parser.add_argument("--wait", type=float, default=0, help="resume: seconds to wait")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    client = HitlClient(args.base, args.key)
    try:
        if args.command == "propose":
            out = paused(agent.propose(client, args.run, args.workdir))
        else:
            out = resumed(client, args.run, args.workdir, args.wait)
    except NotResumable as exc:
        print(json.dumps({"done": False, "waiting_for": exc.waiting}))
        return UNDECIDED
    except TimeoutError:
        print(json.dumps({"done": False, "waiting_for": "decisions"}))
        return UNDECIDED
    except HitlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


def paused(run: dict) -> dict:
    review_ids = [c["review_id"] for c in run["calls"] if c.get("review_id")]
    return {"paused": True, "run_id": run["run_id"], "review_ids": review_ids}


def resumed(client: HitlClient, run_id: str, workdir: Path, wait: float) -> dict:
    run = client.wait_until_resumable(run_id, timeout=wait) if wait else client.run(run_id)
    if run["status"] in ("completed", "stopped"):
        # Finished by an earlier resume: everything it ran is on the platform, run nothing.
        return {"done": True, "executed": [], "rejected": []}
    answer = agent.resume(client, run, workdir)
    calls = client.run(run_id)["calls"]
    seen = json.loads(answer)["seen"]
    executed = [
        {
            "tool": c["action"],
            "args": c["final_arguments"],
            "by": c.get("executed_by") or "agent",
            "result": c["execution"]["result"],
        }
        for c in calls
        if (c.get("execution") or {}).get("state") == "succeeded"
    ]
    rejected = [
        {"tool": c["action"], "reason": c["reason"]} for c in calls if c["decision"] == "reject"
    ]
    # What each tool call told the model, as its last reply quotes it.
    model_saw = {call_id: told["said"] for call_id, told in seen.items()}
    return {"done": True, "executed": executed, "rejected": rejected, "model_saw": model_saw}


if __name__ == "__main__":
    sys.exit(main())
