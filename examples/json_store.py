"""A JSON file that separate processes read and change, standing in for an external system.

The examples' fakes (the payment ledger, the identity directory, the scripted tools' log)
keep their state in one. The topology run SIGKILLs workers while they pay refunds: a file
rewritten in place (truncate, then write) would be left empty or half-written by a process
killed mid-write, and every refund before it would vanish, which a real payment system
never does. So the new contents go to a file beside it that is swapped in whole.
"""

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def changing(path: Path, empty: Callable[[], Any]) -> Iterator[Any]:
    """Yield the file's contents (`empty()` when there is none yet) for the caller to change,
    one process at a time; write them back, if changed, unless the block raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives on its own file: the data file is replaced, so a lock on it would
    # guard an inode the next writer no longer opens.
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        raw = path.read_text() if path.exists() else ""
        data = json.loads(raw) if raw.strip() else empty()
        yield data
        text = json.dumps(data, indent=2, sort_keys=True)
        if text != raw:
            _replace(path, text)


def _replace(path: Path, text: str) -> None:
    # Under the lock, a new file left beside it can only be a killed writer's.
    for orphan in path.parent.glob(path.name + ".*.new"):
        orphan.unlink(missing_ok=True)
    fd, fresh = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".new")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(fresh, path)
    except BaseException:
        os.unlink(fresh)
        raise
