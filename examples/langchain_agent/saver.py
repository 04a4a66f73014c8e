"""A LangGraph checkpointer kept in one JSON file, so a new process resumes the graph.

A stand-in for the savers LangGraph ships as separate packages (SqliteSaver, PostgresSaver):
the example needs nothing beyond langgraph itself.
"""

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver


class FileSaver(InMemorySaver):
    """InMemorySaver that loads its checkpoints from `path` and writes them back on each save."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        # Tool calls of one turn run in threads, each saving its writes.
        self.saving = threading.Lock()
        if not self.path.exists():
            return
        storage, writes, blobs = _decode(json.loads(self.path.read_text()))
        for thread_id, namespaces in storage.items():
            for namespace, checkpoints in namespaces.items():
                self.storage[thread_id][namespace].update(checkpoints)
        self.writes.update(writes)
        self.blobs.update(blobs)

    def put(self, config, checkpoint, metadata, new_versions):
        saved = super().put(config, checkpoint, metadata, new_versions)
        self._save()
        return saved

    def put_writes(self, config, writes, task_id, task_path=""):
        super().put_writes(config, writes, task_id, task_path)
        self._save()

    def _save(self) -> None:
        with self.saving:
            state = (
                {thread_id: dict(namespaces) for thread_id, namespaces in self.storage.items()},
                dict(self.writes),
                dict(self.blobs),
            )
            scratch = self.path.with_suffix(".tmp")
            scratch.write_text(json.dumps(_encode(state)))
            os.replace(scratch, self.path)


# The saver's keys are tuples and its values bytes: tag both so JSON can hold them.
def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    return value


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "b" in value:
        return base64.b64decode(value["b"])
    if "t" in value:
        return tuple(_decode(v) for v in value["t"])
    return {_decode(k): _decode(v) for k, v in value["d"]}
