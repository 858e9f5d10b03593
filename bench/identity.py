"""Identity costs, measured (not asserted).

Prints, in one run on the embedded SQLite database:

1. the cost of a sign-in (POST /api/v1/users/login) and how much of it is
   the argon2id password hash, which is meant to dominate;
2. an authenticated no-op request (bearer token checked, user loaded, a
   permission resolved) against an anonymous one, as a ratio.
   Goal: authentication adds at most 15% to a no-op request.

    .venv/bin/python bench/identity.py [--requests 2000] [--logins 20]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build(tmp: Path):
    from learnsail import migrations
    from learnsail.api import PUBLIC, Service
    from learnsail.app import configure

    settings = {"learnsail.data_dir": str(tmp), "learnsail.plugins": "", "learnsail.log_level": "WARNING",
                "learnsail.secret": "bench-secret-bench-secret-bench-secret",
                "learnsail.ratelimit_login_ip": "", "learnsail.ratelimit_login_account": ""}
    config = configure(settings, environ={})
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    anonymous = Service(name="bench.anonymous", path="/api/v1/bench/anonymous")
    anonymous.add_view("GET", lambda request: {}, permission=PUBLIC)
    authenticated = Service(name="bench.authenticated", path="/api/v1/bench/authenticated")
    authenticated.add_view("GET", lambda request: {}, permission="core:account:self")
    config.add_learnsail_service(anonymous)
    config.add_learnsail_service(authenticated)
    return config.make_wsgi_app()


def call(app, method, path, body=None, headers=None):
    from webob import Request

    request = Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    status = []

    def start_response(s, h, exc_info=None):
        status.append(s)

    chunks = app(request.environ, start_response)
    data = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return status[0], data


def per_request(app, path, headers, n):
    start = time.perf_counter()
    for _ in range(n):
        call(app, "GET", path, headers=headers)
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("learnsail").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp))
        from sqlalchemy.orm import Session

        from learnsail.identity import passwords
        from learnsail.identity.services import create_user

        with Session(app.registry["learnsail.db_engine"]) as session, session.begin():
            create_user(session, username="bench", password="bench passphrase 123", role="student")
        status, body = call(app, "POST", "/api/v1/users/login",
                            {"username": "bench", "password": "bench passphrase 123"})
        assert status.startswith("200"), body
        token = json.loads(body)["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        logins = []
        for _ in range(args.logins):
            start = time.perf_counter()
            call(app, "POST", "/api/v1/users/login", {"username": "bench", "password": "bench passphrase 123"})
            logins.append(time.perf_counter() - start)
        stored = passwords.hash_password("bench passphrase 123")
        hashes = []
        for _ in range(args.logins):
            start = time.perf_counter()
            passwords.verify_password(stored, "bench passphrase 123")
            hashes.append(time.perf_counter() - start)
        login_ms, hash_ms = statistics.median(logins) * 1000, statistics.median(hashes) * 1000
        print(f"sign-in (POST /api/v1/users/login): {login_ms:8.1f} ms median of {args.logins}")
        print(f"  argon2id verify alone:            {hash_ms:8.1f} ms ({hash_ms / login_ms:.0%} of a sign-in)")

        per_request(app, "/api/v1/bench/anonymous", {}, 200)  # warm up
        per_request(app, "/api/v1/bench/authenticated", bearer, 200)
        anon, auth = [], []
        for _ in range(args.rounds):  # interleaved rounds, best of each
            anon.append(per_request(app, "/api/v1/bench/anonymous", {}, args.requests))
            auth.append(per_request(app, "/api/v1/bench/authenticated", bearer, args.requests))
        a, b = min(anon) * 1e6, min(auth) * 1e6
        print(f"anonymous no-op request:     {a:8.1f} µs")
        print(f"authenticated no-op request: {b:8.1f} µs")
        print(f"authentication overhead: {b / a:.2f}x (goal <= 1.15x)")
        app.registry["learnsail.db_engine"].dispose()


if __name__ == "__main__":
    sys.exit(main())
