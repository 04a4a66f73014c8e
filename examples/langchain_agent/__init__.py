"""A LangChain agent (create_agent + HumanInTheLoopMiddleware) reviewed on the platform.

    python -m examples.langchain_agent propose --base URL --key KEY --run RUN --workdir DIR
    python -m examples.langchain_agent resume  --base URL --key KEY --run RUN --workdir DIR

`agent.py` is the glue; `scripted.py` the scripted model and tools; `saver.py` a file-backed
LangGraph checkpointer, so `resume` works in a new process.
"""
