"""The LangChain glue of the example: its only lines that touch LangChain or the adapter."""

from pathlib import Path

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langgraph.types import Command

from hitl_client import HitlClient
from hitl_client.langchain import PlatformTools, forward_interrupt, resume_value

from .saver import FileSaver
from .scripted import REQUEST, ScriptedModel, make_tools

REVIEWED = {"allowed_decisions": ["approve", "edit", "reject"]}


def build(client: HitlClient, run_id: str, workdir: Path):
    """The agent (reviewed tools paused by the middleware and run the platform's way, the
    graph's checkpoints kept in `workdir`) and the config of the run's thread."""
    hitl = HumanInTheLoopMiddleware(interrupt_on={"issue_refund": REVIEWED, "send_email": REVIEWED})
    tools, saver = make_tools(workdir), FileSaver(workdir / "graph.json")
    middleware = [hitl, PlatformTools(client, run_id)]
    agent = create_agent(ScriptedModel(), tools, middleware=middleware, checkpointer=saver)
    return agent, {"configurable": {"thread_id": run_id}}


def propose(client: HitlClient, run_id: str, workdir: Path) -> dict:
    """Run the agent until it pauses and send the pause to the platform; answers the run."""
    agent, thread = build(client, run_id, workdir)
    result = agent.invoke({"messages": [("user", REQUEST)]}, thread, version="v2")
    return forward_interrupt(client, result, run_id=run_id, summary=REQUEST)


def resume(client: HitlClient, run: dict, workdir: Path) -> str:
    """Continue the graph with the platform's decisions (NotResumable while one is missing),
    then finish the run; answers the model's last reply."""
    agent, thread = build(client, run["run_id"], workdir)
    value = resume_value(run)
    # Moving the checkpoint's version on makes this process the one resumer: another that
    # read the same run gets 409 checkpoint_conflict here, before anything runs.
    client.save_checkpoint(run["run_id"], run["checkpoint"], version=run["checkpoint_version"])
    result = agent.invoke(Command(resume=value), thread, version="v2")
    client.finish(run["run_id"])
    return result.value["messages"][-1].content
