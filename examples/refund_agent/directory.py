"""A fake identity directory (who holds which access, until when) kept in a JSON file,
like the fake payment system (payments.py), so separate processes share it.

`permission_facts` is the fact provider of `change_permission`: it tells the platform
whether the subject exists and already holds the requested access, and shows the
reviewer the subject's current access and who else holds it.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from examples.json_store import changing

SOURCE = "identity directory"

# user id -> its record; access: permission -> days until it lapses (None: no end).
DEFAULT_USERS = {
    "u-77": {"name": "Uma Patel", "version": "1", "access": {"support-agent": None}},
    "u-12": {"name": "Ines Berg", "version": "3", "access": {"billing-admin": None}},
    "u-31": {"name": "Tom Okafor", "version": "2", "access": {"billing-admin": 30}},
    "u-5": {"name": "Sam Reyes", "version": "7", "access": {"prod-admin": None}},
    "contractor-9": {"name": "Kai Lund", "version": "1", "access": {"staging-deploy": 60}},
}


def directory_path() -> Path:
    default = Path(tempfile.gettempdir()) / "hitl_fake_directory.json"
    return Path(os.environ.get("HITL_FAKE_DIRECTORY_FILE", default))


def _initial_users() -> dict:
    now = datetime.now(UTC)
    return {
        user_id: {
            **record,
            "access": {
                permission: None if days is None else (now + timedelta(days=days)).isoformat()
                for permission, days in record["access"].items()
            },
        }
        for user_id, record in DEFAULT_USERS.items()
    }


@contextmanager
def _directory():
    with changing(directory_path(), dict) as data:
        data.setdefault("users", _initial_users())
        yield data


def state() -> dict:
    """The whole directory: users with their access and its end (ISO 8601, or null)."""
    with _directory() as data:
        return json.loads(json.dumps(data))


def set_access(user_id: str, permission: str, until: str | None = None) -> None:
    """Give a user access (creating the user), until a moment or for good."""
    with _directory() as data:
        user = data["users"].setdefault(user_id, {"name": user_id, "version": "1", "access": {}})
        user["access"][permission] = until
        user["version"] = str(int(user.get("version") or 0) + 1)


def _current(access: dict, now: datetime) -> dict:
    """The access that has not lapsed."""
    return {
        permission: until
        for permission, until in access.items()
        if until is None or datetime.fromisoformat(until) > now
    }


def permission_facts(*, action_name: str, arguments: dict, affected_resources: list, tenant: str):
    """The fact provider of change_permission: subject_exists and already_has_access
    (facts the policy reads), the subject's version, and for the reviewer the subject's
    current access and who else holds the requested access, until when."""
    subject, permission = str(arguments.get("user_id")), str(arguments.get("permission"))
    now = datetime.now(UTC)
    with _directory() as data:
        users = json.loads(json.dumps(data["users"]))
    record = users.get(subject)
    current = _current(record["access"], now) if record else {}
    holders = [
        {"user": user_id, "access": permission, "until": _current(user["access"], now)[permission]}
        for user_id, user in sorted(users.items())
        if user_id != subject and permission in _current(user["access"], now)
    ]
    return {
        "facts": {
            "subject_exists": record is not None,
            "already_has_access": permission in current,
        },
        "resources": [
            {"type": "user", "id": subject, "version": record["version"] if record else None}
        ],
        "details": {"subject": subject, "current_access": sorted(current), "holders": holders},
        "source": SOURCE,
    }
