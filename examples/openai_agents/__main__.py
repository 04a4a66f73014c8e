"""Run the support agent against the platform, one step per process.

    python -m examples.openai_agents propose --base URL --key KEY --run RUN_ID --workdir DIR
    python -m examples.openai_agents resume  --base URL --key KEY --run RUN_ID --workdir DIR

`propose` runs the model's turn until its tools wait for approval and sends both calls as
one batch; `resume`, in a new process, applies the reviewers' decisions and finishes the run.
Exit 3: something is still undecided.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from agents import Runner, set_tracing_disabled

from hitl_client import HitlClient, HitlError, NotResumable
from hitl_client.openai_agents import forward_interruptions, resume

from .agent import PROMPT, build_agent

TARGET_SYSTEMS = {"issue_refund": "billing", "send_email": "mailer"}


async def propose(client: HitlClient, args) -> int:
    result = await Runner.run(build_agent(args.workdir), PROMPT)
    run = forward_interruptions(
        client, result, run_id=args.run, summary=PROMPT, target_systems=TARGET_SYSTEMS
    )
    review_ids = [call["review_id"] for call in run["calls"] if call["review_id"]]
    print(json.dumps({"paused": True, "run_id": run["run_id"], "review_ids": review_ids}))
    return 0


async def resume_run(client: HitlClient, args) -> int:
    try:
        done = await resume(client, build_agent(args.workdir), args.run)
    except NotResumable as exc:
        print(f"not yet: {exc}", file=sys.stderr)
        return 3
    print(json.dumps({"done": True, "executed": done.executed, "rejected": done.rejected}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["propose", "resume"])
    parser.add_argument("--base", required=True, help="the platform's URL")
    parser.add_argument("--key", required=True, help="the agent's API key")
    parser.add_argument("--run", required=True, help="the run id")
    parser.add_argument("--workdir", required=True, type=Path)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    # The scripted model needs no OpenAI account, and traces would need one.
    set_tracing_disabled(True)
    client = HitlClient(args.base, args.key)
    step = propose if args.command == "propose" else resume_run
    try:
        return asyncio.run(step(client, args))
    except HitlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
