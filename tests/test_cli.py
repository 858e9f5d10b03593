"""The `learnsail` command: init, plugins, serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import sqlalchemy as sa

from learnsail.cli import main
from learnsail.migrations import core_head
from learnsail.testing.services import free_port


@pytest.fixture
def env(monkeypatch, tmp_path, fresh_database_url):
    for name in list(os.environ):
        if name.startswith("LEARNSAIL_") and name not in ("LEARNSAIL_TEST_DB", "LEARNSAIL_REQUIRE_SERVICES"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEARNSAIL_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("LEARNSAIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEARNSAIL_LOG_LEVEL", "CRITICAL")
    return fresh_database_url


def admins(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT u.username FROM users u JOIN roles r ON r.id = u.role_id WHERE r.name = 'admin'")).all()
    engine.dispose()
    return [r[0] for r in rows]


def test_init_generates_admin_password_once(env, capsys):
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "created 'admin' with password '" in out and "shown once" in out
    password = out.split("with password '")[1].split("'")[0]
    assert len(password) >= 12
    assert admins(env) == ["admin"]
    assert main(["init"]) == 0  # idempotent: no second admin, no password shown
    out = capsys.readouterr().out
    assert "an administrator already exists" in out and password not in out
    assert admins(env) == ["admin"]


def test_init_uses_admin_credentials_from_environment(env, monkeypatch, capsys):
    monkeypatch.setenv("LEARNSAIL_ADMIN_USERNAME", "root-teacher")
    monkeypatch.setenv("LEARNSAIL_ADMIN_PASSWORD", "a long admin passphrase")
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "a long admin passphrase" not in out
    assert admins(env) == ["root-teacher"]
    from learnsail.app import load_settings
    from learnsail.identity.services import authenticate
    from learnsail.db import make_engine
    from sqlalchemy.orm import Session

    settings, _ = load_settings({})
    with Session(make_engine(settings)) as session:
        assert authenticate(session, "a long admin passphrase", username="root-teacher").role.name == "admin"


def test_plugins_lists_core(env, capsys):
    main(["db", "upgrade"])
    capsys.readouterr()
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    core = rows[0]
    assert core["name"] == "core" and core["enabled"] and core["migration_head"] == core_head()
    assert "learnsail_permissions" in core["hooks"]
    assert main(["plugins"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "version", "enabled"]


def test_unknown_plugin_setting_is_a_clear_error(env, monkeypatch, capsys):
    monkeypatch.setenv("LEARNSAIL_PLUGINS", "nosuchplugin")
    assert main(["db", "upgrade"]) == 2
    assert "learnsail.plugins names nosuchplugin, which is not installed" in capsys.readouterr().err


def test_invalid_setting_is_a_clear_error(env, monkeypatch, capsys):
    monkeypatch.setenv("LEARNSAIL_MAX_BODY_SIZE", "lots")
    assert main(["plugins"]) == 2
    assert "LEARNSAIL_MAX_BODY_SIZE has an invalid value 'lots'" in capsys.readouterr().err


def test_ini_file_settings(env, tmp_path, monkeypatch, capsys):
    ini = tmp_path / "site.ini"
    ini.write_text(f"[app:main]\nuse = egg:learnsail\nlearnsail.database_url = {env}\n")
    monkeypatch.delenv("LEARNSAIL_DATABASE_URL")
    assert main(["-c", str(ini), "db", "upgrade"]) == 0
    assert "users" in sa.inspect(sa.create_engine(env)).get_table_names()


def test_serve_answers_http(env, tmp_path):
    """`learnsail serve` runs a real WSGI server (waitress) in a process."""
    assert main(["init"]) == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "learnsail.cli", "serve", "--port", str(port)],
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
                    assert response.headers["X-Request-ID"]
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "timeout")
                time.sleep(0.2)
        assert body["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/docs", timeout=5) as response:
            assert b"swagger-ui" in response.read()
    finally:
        proc.terminate()
        proc.wait(10)


def test_admin_password_from_environment_must_meet_the_policy(env, monkeypatch, capsys):
    monkeypatch.setenv("LEARNSAIL_ADMIN_PASSWORD", "password")
    assert main(["init"]) == 2
    assert "LEARNSAIL_ADMIN_PASSWORD is refused" in capsys.readouterr().err
    assert admins(env) == []


@pytest.mark.parametrize("variable,value,message", [
    ("LEARNSAIL_JWT_ALGORITHM", "none", "not allowed"),
    ("LEARNSAIL_JWT_ALGORITHM", "RS256", "learnsail.jwt_private_key"),
    ("LEARNSAIL_CODE_LENGTH", "20", "from 4 to 10"),
])
def test_unusable_identity_settings_stop_start_up(env, monkeypatch, variable, value, message):
    from learnsail.app import make_app
    from learnsail.settings import SettingError

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=message):
        make_app({})


def _serve(port, extra_env):
    return subprocess.Popen([sys.executable, "-m", "learnsail.cli", "serve", "--port", str(port)],
                            env={**os.environ, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _get(url, headers, deadline, proc):
    while True:
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                return response
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "timeout")
            time.sleep(0.2)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-proxy", "no-proxy"])
def test_serve_trusts_only_the_configured_proxy(env, trusted):
    assert main(["init"]) == 0
    port = free_port()
    proc = _serve(port, {"LEARNSAIL_TRUSTED_PROXY": "127.0.0.1"} if trusted else {})
    try:
        response = _get(f"http://127.0.0.1:{port}/healthz", {"X-Forwarded-Proto": "https",
                                                              "X-Forwarded-For": "198.51.100.7"},
                        time.monotonic() + 30, proc)
        assert ("Strict-Transport-Security" in response.headers) is trusted
    finally:
        proc.terminate()
        proc.wait(10)
