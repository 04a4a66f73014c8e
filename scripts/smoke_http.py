"""The smoke test's harness: settings, checks, HTTP clients, `manage.py shell` and webhooks.

Standard library only; scripts/smoke.py runs the scenario with it.
"""

import hashlib
import hmac
import http.client
import http.cookies
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse

PORT = int(os.environ["SMOKE_PORT"])
HOST = "127.0.0.1"
ORIGIN = f"https://{HOST}:{PORT}"
LOG_DIR = os.environ.get("SMOKE_LOG_DIR", ".")
WAIT = float(os.environ.get("SMOKE_WAIT_SECONDS", "120"))
PYTHON = sys.executable
TAG = time.strftime("%Y%m%d%H%M%S")
PASSWORD = "demo"  # noqa: S105 - the seeded demo users' password

passed: list[str] = []


class CheckFailed(Exception):
    """A check that does not hold: main() prints it as the FAIL line."""


def ok(what: str) -> None:
    passed.append(what)
    print(f"  ok  {what}", flush=True)


def check(condition: bool, what: str, detail: str = "") -> None:
    if not condition:
        raise CheckFailed(f"{what}" + (f"\n      {detail}" if detail else ""))
    ok(what)


def shorten(value, limit: int = 1500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


# --- HTTP -------------------------------------------------------------------------------


class Client:
    """One HTTP client (an agent key or a browser-like session) with its own cookies."""

    def __init__(self, name: str, headers: dict[str, str] | None = None):
        self.name = name
        self.headers = headers or {}
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body=None, headers=None, form=False):
        conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
        sent = {"X-Forwarded-Proto": "https", "Accept": "application/json", **self.headers}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise CheckFailed(f"{self.name}: {method} {path} got no answer: {exc}") from exc
        finally:
            conn.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = http.cookies.SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return response.status, response.headers, payload

    def expect(self, status: int, method: str, path: str, body=None, headers=None):
        code, answer_headers, payload = self.request(method, path, body, headers)
        if code != status:
            raise CheckFailed(
                f"{self.name}: {method} {path} answered {code}, expected {status}\n"
                f"      request: {shorten(body) if body is not None else '(no body)'}\n"
                f"      response: {shorten(payload)}"
            )
        return payload, answer_headers


def login(username: str) -> Client:
    """Sign in through the admin's login form, as a reviewer's browser does."""
    client = Client(username, {"Origin": ORIGIN, "Referer": f"{ORIGIN}/admin/login/"})
    code, _, page = client.request("GET", "/admin/login/?next=/admin/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', str(page))
    if code != 200 or match is None:
        raise CheckFailed(f"{username}: GET /admin/login/ answered {code} without a CSRF token")
    form = {
        "username": username,
        "password": PASSWORD,
        "csrfmiddlewaretoken": match.group(1),
        "next": "/admin/",
    }
    code, headers, page = client.request("POST", "/admin/login/?next=/admin/", form, form=True)
    if code != 302 or "sessionid" not in client.cookies:
        raise CheckFailed(
            f"{username}: login with password '{PASSWORD}' failed ({code}, "
            f"Location {headers.get('Location')}): {shorten(page, 300)}"
        )
    # Unsafe API calls need the session's CSRF token, as a front end sends it.
    client.headers["X-CSRFToken"] = client.cookies.get("csrftoken", "")
    return client


# --- manage.py --------------------------------------------------------------------------


def manage(*args: str, timeout: float = 120) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
            [PYTHON, "manage.py", *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"manage.py {args[0]} did not finish in {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise CheckFailed(
            f"manage.py {args[0]} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def django(code: str):
    """Run code in `manage.py shell`; it leaves its answer in the variable `result`."""
    wrapped = code + "\nimport json as _j\nprint('SMOKE_JSON ' + _j.dumps(result, default=str))"
    out = manage("shell", "--no-imports", "-c", wrapped)
    for line in out.splitlines():
        if line.startswith("SMOKE_JSON "):
            return json.loads(line[len("SMOKE_JSON ") :])
    raise CheckFailed(f"manage.py shell printed no answer:\n{out[-2000:]}")


# --- webhooks ---------------------------------------------------------------------------


class Webhooks:
    """The agent's callback endpoint: records every POST the worker delivers."""

    def __init__(self):
        self.received: list[dict] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with hooks.lock:
                    hooks.received.append(
                        {
                            "body": body,
                            "timestamp": self.headers.get("X-HITL-Timestamp", ""),
                            "signature": self.headers.get("X-HITL-Signature", ""),
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, secret: str) -> list[tuple[str, str, bool]]:
        """(event, review_id, signature valid) per delivery received so far."""
        out = []
        with self.lock:
            received = list(self.received)
        for item in received:
            mac = hmac.new(
                secret.encode(), f"{item['timestamp']}.".encode() + item["body"], hashlib.sha256
            )
            valid = hmac.compare_digest("v1=" + mac.hexdigest(), item["signature"])
            payload = json.loads(item["body"])
            out.append((payload.get("event"), payload.get("review_id"), valid))
        return out


# --- the worker's pace ------------------------------------------------------------------


def until(deadline: float, what: str, probe, interval: float = 2.0):
    """Call probe() until it returns something truthy; fail at the deadline."""
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {WAIT:.0f} s")
        time.sleep(interval)


class TlsProxy:
    """The pretend TLS proxy in front of gunicorn, for programs that speak plain HTTP (the
    example agents): it forwards each request with `X-Forwarded-Proto: https`, as the
    deployment's proxy does."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["X-Forwarded-Proto"] = "https"
                conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    raw = response.read()
                finally:
                    conn.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
