"""The policy engine, as the platform imports it: ``hitl_client.engine``, re-exported.

The engine is pure Python with no I/O, and ships in the agent's ``hitl_client`` package so
an agent decides its own tool calls with exactly the code the server decides with; this
name keeps the platform's imports (``from policies.engine import ...``) as they were.
"""

from hitl_client.engine import *  # noqa: F403
from hitl_client.engine import __all__  # noqa: F401
