"""The platform services end to end, as a user meets them: real `learnsail`
processes over HTTP and WebSocket, once as `make run` starts them (embedded:
SQLite or the test database, local files, in-memory cache and bus, tasks in
the app process) and once on real services (Redis for the cache, the
broker and the realtime bus; an S3-protocol server for files; a separate
`learnsail worker` and `learnsail realtime` gateway).

In both: an uploaded image comes back through a signed URL; a notification
created by one request appears in the list and arrives live on an open
WebSocket; a new account reaches a webhook receiver, signed.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterator

import pytest
from PIL import Image
from websockets.sync.client import connect

from learnsail.testing.services import free_port
from learnsail.webhooks.sender import verify

ADMIN, ADMIN_PASSWORD = "e2e_admin", "Sail-the-e2e-seas-2026!"
PASSWORD = "correct horse battery staple 42"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


class Client:
    """JSON over real HTTP to one `learnsail serve` process."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             data: bytes | None = None, content_type: str | None = None) -> tuple[int, dict, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        url = path if path.startswith("http") else self.base + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with OPENER.open(request, timeout=20) as response:
                status, head, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, head, raw = exc.code, dict(exc.headers), exc.read()
        ctype = head.get("Content-Type", "")
        return status, head, json.loads(raw) if raw and ctype.startswith("application/json") else raw

    def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        status, _, body = self.call(method, path, **kwargs)
        assert status == expect, (method, path, status, body)
        return body

    def login(self, username: str, password: str) -> tuple[str, int]:
        body = self.ok("POST", "/api/v1/users/login", body={"username": username, "password": password})
        return body["access_token"], body["user"]["id"]

    def upload(self, path: str, token: str, name: str, payload: bytes, mime: str) -> Any:
        boundary = uuid.uuid4().hex
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
        return self.ok("POST", path, 201, token=token, data=data,
                       content_type=f"multipart/form-data; boundary={boundary}")


class Receiver:
    """A webhook receiver on loopback recording what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/learnsail"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def wait_for(check: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Platform:
    """The processes of one deployment, started with one environment."""

    def __init__(self, env: dict[str, str], tmp: Any) -> None:
        self.env = env
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen, Any]] = []

    def command(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "learnsail.cli", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc, log))
        return proc

    def output(self) -> str:
        return "\n".join(f"--- {name}\n" + (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]
                         for name, _, _ in self.procs)

    def wait_http(self, url: str) -> None:
        def up() -> bool:
            for name, proc, _ in self.procs:
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited:\n{self.output()}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False

        wait_for(up, 60, url)

    def wait_ws(self, url: str) -> None:
        def up() -> bool:
            try:
                with connect(url, open_timeout=2):
                    return True
            except OSError:
                return False

        wait_for(up, 60, url)

    def stop(self) -> None:
        for _, proc, log in reversed(self.procs):
            proc.terminate()
        for _, proc, log in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@pytest.fixture(params=["embedded", "services"])
def platform(request, tmp_path, fresh_database_url) -> Iterator[tuple[Platform, Client, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_") or
           k in ("LEARNSAIL_TEST_DB", "LEARNSAIL_REQUIRE_SERVICES")}
    http_port, ws_port = free_port(), free_port()
    env.update({
        "LEARNSAIL_DATABASE_URL": fresh_database_url,
        "LEARNSAIL_DATA_DIR": str(tmp_path / "data"),
        "LEARNSAIL_LOG_LEVEL": "WARNING",
        "LEARNSAIL_ADMIN_USERNAME": ADMIN,
        "LEARNSAIL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        # the receiver is on loopback
        "LEARNSAIL_WEBHOOKS_ALLOW_PRIVATE": "true",
    })
    if request.param == "services":
        redis = request.getfixturevalue("redis_server")
        s3 = request.getfixturevalue("s3_server")
        base = f"redis://{redis.host}:{redis.port}"
        env.update({
            "LEARNSAIL_CACHE_URL": f"{base}/7",
            "LEARNSAIL_BROKER_URL": f"{base}/8",
            "LEARNSAIL_REALTIME_BUS_URL": f"{base}/9",
            "LEARNSAIL_REALTIME_REDIS_PREFIX": f"e2e{uuid.uuid4().hex[:8]}:",
            "LEARNSAIL_STORAGE_URL": f"s3://{s3.access_key}:{s3.secret_key}@{s3.endpoint}/"
                                     f"e2e-{uuid.uuid4().hex[:10]}?secure=false&region={s3.region}",
        })
    deployment = Platform(env, tmp_path)
    init = subprocess.run([sys.executable, "-m", "learnsail.cli", "init"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    try:
        if request.param == "embedded":
            # what `make run` starts: the app with its gateway and scheduler in one process
            deployment.command("serve", "serve", "--port", str(http_port), "--realtime-port", str(ws_port))
        else:
            deployment.command("serve", "serve", "--port", str(http_port), "--no-realtime", "--threads", "4")
            deployment.command("worker", "worker", "--pool", "solo", "--loglevel", "WARNING")
            deployment.command("realtime", "realtime", "--port", str(ws_port))
        deployment.wait_http(f"http://127.0.0.1:{http_port}/healthz")
        ws_url = f"ws://127.0.0.1:{ws_port}/ws"
        deployment.wait_ws(ws_url)
        yield deployment, Client(f"http://127.0.0.1:{http_port}"), ws_url
    finally:
        deployment.stop()
        print(deployment.output())  # shown by pytest when the test failed


def image_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "PNG")
    return out.getvalue()


def test_the_platform_services_end_to_end(platform, request):
    deployment, client, ws_url = platform
    mode = request.node.callspec.params["platform"]
    admin_token, _ = client.login(ADMIN, ADMIN_PASSWORD)
    health = client.ok("GET", "/healthz")  # a fresh deployment is healthy (the bucket is made if missing)
    assert health["status"] == "ok", health

    # the cache is the configured one
    cache = client.ok("GET", "/api/v1/admin/cache", token=admin_token)
    assert cache["backend"] == ("memory" if mode == "embedded" else "redis") and cache["available"]

    # a webhook receiver subscribed to new accounts
    receiver = Receiver()
    endpoint = client.ok("POST", "/api/v1/webhooks", 201, token=admin_token,
                         body={"url": receiver.url, "events": ["user.created"]})

    # a student registers (the webhook fires) and signs in
    client.ok("POST", "/api/v1/users/register", 201,
              body={"username": "e2e_student", "password": PASSWORD, "email": "e2e_student@example.com"})
    token, student_id = client.login("e2e_student", PASSWORD)
    [hook] = wait_for(lambda: receiver.requests, 30, "the webhook")
    headers = {k.lower(): v for k, v in hook["headers"].items()}
    assert headers["x-learnsail-event"] == "user.created"
    assert verify(endpoint["secret"], headers["x-learnsail-timestamp"], hook["body"],
                  headers["x-learnsail-signature"])
    assert json.loads(hook["body"])["data"]["id"] == student_id

    # an uploaded image comes back through a signed URL
    original = image_bytes()
    uploaded = client.upload("/api/v1/upload/image", token, "poster.png", original, "image/png")
    assert uploaded["mime_type"] == "image/png" and uploaded["file_name"] == "poster.png"
    status, head, _ = client.call("GET", uploaded["file_url"], token=token)
    assert status == 302
    location = head["Location"]
    if mode == "embedded":
        assert location.startswith(client.base + "/api/v1/storage/")
    else:
        assert location.startswith(f"http://{request.getfixturevalue('s3_server').endpoint}/")
    status, _, data = client.call("GET", location)
    assert status == 200 and len(data) == uploaded["file_size"]
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    if mode == "embedded":  # a tampered signed URL is refused (the S3 test server checks no signatures)
        assert client.call("GET", location[:-2] + ("AA" if not location.endswith("AA") else "BB"))[0] == 403
    other_token, _ = client.login(ADMIN, ADMIN_PASSWORD)
    assert client.call("GET", uploaded["file_url"], token=None)[0] == 401

    # a notification created by one request is listed and arrives live
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        ws.send(json.dumps({"type": "subscribe", "channels": [f"user:{student_id}"]}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        client.ok("POST", "/api/v1/notifications", 201, token=other_token,
                  body={"user_ids": [student_id], "title": "Welcome aboard", "content": "Classes start Monday."})
        event = json.loads(ws.recv(timeout=15))
    assert event["type"] == "event" and event["channel"] == f"user:{student_id}"
    assert event["event"] == "notification" and event["data"]["title"] == "Welcome aboard"
    listed = client.ok("GET", "/api/v1/users/notifications", token=token)["results"]
    assert [n["title"] for n in listed] == ["Welcome aboard"] and listed[0]["id"] == event["data"]["id"]
    assert client.ok("GET", "/api/v1/users/notifications/unread-count", token=token) == {"count": 1}

    # the delivery log shows the webhook succeeded (once the worker has
    # written it: on SQLite a write may meet the app's lock and be retried)
    deadline = time.monotonic() + 20
    while True:
        log = client.ok("GET", f"/api/v1/webhooks/{endpoint['id']}/deliveries", token=admin_token)
        if log["results"] and log["results"][0]["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(d["event_type"], d["status"], d["response_status"]) for d in log["results"]] == \
        [("user.created", "succeeded", 204)]
