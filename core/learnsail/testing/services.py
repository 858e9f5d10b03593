"""Launchers for real backing services (MariaDB, Redis, S3, ffmpeg) on loopback.

These are used by the test fixtures in :mod:`learnsail.testing`.  Every
launcher starts a private, throw-away instance bound to ``127.0.0.1`` on a
free port, waits until it answers, and returns a small handle object with a
``stop()`` method.  When a required binary or Python package is missing,
:class:`ServiceUnavailable` is raised so callers can skip (or fail) cleanly.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Sequence

__all__ = [
    "ServiceUnavailable",
    "free_port",
    "MariaDBServer",
    "start_mariadb",
    "RedisServer",
    "start_redis",
    "S3Server",
    "start_s3",
    "find_ffmpeg",
]

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_STARTUP_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class ServiceUnavailable(Exception):
    """A binary or Python package needed to run a service is not installed."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _which(*names: str) -> str | None:
    """Find the first of ``names`` on PATH or in the usual sbin directories."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    extra = os.pathsep.join(_SBIN_DIRS)
    for name in names:
        found = shutil.which(name, path=extra)
        if found:
            return found
    return None


def _tail(path: pathlib.Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_process(proc: subprocess.Popen | None, timeout: float = _STOP_TIMEOUT) -> None:
    """Terminate ``proc``; SIGKILL its process group if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------


def _import_mysqldb():
    try:
        import MySQLdb  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ServiceUnavailable(
            "Python package 'mysqlclient' (module MySQLdb) is not importable: "
            f"{exc}. Install it with `pip install mysqlclient` (needs the Debian "
            "packages default-libmysqlclient-dev, pkg-config and build-essential)."
        ) from exc
    return MySQLdb


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaDBServer:
    """Handle for a private MariaDB server started by :func:`start_mariadb`."""

    user = "root"

    def __init__(
        self,
        proc: subprocess.Popen,
        host: str,
        port: int,
        base_dir: pathlib.Path,
        socket_path: pathlib.Path,
        log_path: pathlib.Path,
        cleanup_dir: str | None = None,
    ) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.base_dir = base_dir
        self.socket_path = socket_path
        self.log_path = log_path
        self._cleanup_dir = cleanup_dir

    def __repr__(self) -> str:
        return f"<MariaDBServer {self.host}:{self.port} pid={self.proc.pid}>"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (mysqlclient driver) for ``database`` on this server."""
        return (
            f"mysql+mysqldb://{self.user}@{self.host}:{self.port}/{database}"
            "?charset=utf8mb4"
        )

    def _connect(self):
        MySQLdb = _import_mysqldb()
        return MySQLdb.connect(
            host=self.host, port=self.port, user=self.user, charset="utf8mb4"
        )

    def _execute(self, sql: str) -> None:
        conn = self._connect()
        try:
            conn.cursor().execute(sql)
            conn.commit()
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (utf8mb4) if it does not exist; return its URL."""
        self._execute(
            f"CREATE DATABASE IF NOT EXISTS {_quote_ident(name)} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists."""
        self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 10 s)."""
        _stop_process(self.proc)
        if self._cleanup_dir:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None


def _mariadb_ready(host: str, port: int) -> bool:
    try:
        import MySQLdb  # type: ignore[import-not-found]
    except ImportError:
        return _tcp_open(host, port)
    try:
        conn = MySQLdb.connect(host=host, port=port, user="root", connect_timeout=2)
    except MySQLdb.Error:
        return False
    conn.close()
    return True


def start_mariadb(base_dir: pathlib.Path, options: Sequence[str] = ()) -> MariaDBServer:
    """Initialise a fresh datadir under ``base_dir`` and start MariaDB on it.

    The server listens on ``127.0.0.1`` on a free port; ``root`` has no
    password.  It is sized for tests (a 64 MiB buffer pool); ``options``
    are further ``mariadbd`` options, later ones winning (benchmarks give
    it a production-sized ``--innodb-buffer-pool-size``).  Raises :class:`ServiceUnavailable` when the MariaDB binaries
    are not installed, :class:`RuntimeError` when the server does not come up
    within 30 seconds (the message includes the tail of its log).
    """
    base_dir = pathlib.Path(base_dir)
    install_db = _which("mariadb-install-db", "mysql_install_db")
    mariadbd = _which("mariadbd", "mysqld")
    if not install_db or not mariadbd:
        missing = "mariadb-install-db" if not install_db else "mariadbd"
        raise ServiceUnavailable(
            f"MariaDB binary '{missing}' not found on PATH or in /usr/sbin; "
            "install the Debian package 'mariadb-server'."
        )

    base_dir.mkdir(parents=True, exist_ok=True)
    datadir = base_dir / "mariadb-data"
    log_path = base_dir / "mariadb.log"
    as_root = os.geteuid() == 0
    user_args = ["--user=root"] if as_root else []

    # unix socket paths are limited to ~107 bytes; fall back to a short tmp dir
    cleanup_dir = None
    socket_path = base_dir / "mysqld.sock"
    if len(os.fsencode(str(socket_path))) > 100:
        cleanup_dir = tempfile.mkdtemp(prefix="ls-maria-")
        socket_path = pathlib.Path(cleanup_dir) / "mysqld.sock"

    if not (datadir / "mysql").is_dir():
        init_log = base_dir / "mariadb-install-db.log"
        with open(init_log, "wb") as fh:
            rc = subprocess.call(
                [
                    install_db,
                    "--no-defaults",  # must be the first option
                    f"--datadir={datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *user_args,
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(base_dir),
            )
        if rc != 0:
            if cleanup_dir:
                shutil.rmtree(cleanup_dir, ignore_errors=True)
            raise RuntimeError(
                f"{install_db} failed with exit code {rc}:\n{_tail(init_log)}"
            )

    host = "127.0.0.1"
    port = free_port()
    cmd = [
        mariadbd,
        "--no-defaults",  # must be the first option
        f"--datadir={datadir}",
        f"--socket={socket_path}",
        f"--port={port}",
        f"--bind-address={host}",
        "--skip-networking=0",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        *user_args,
        *options,
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(base_dir),
            start_new_session=True,
        )
    server = MariaDBServer(
        proc, host, port, base_dir, socket_path, log_path, cleanup_dir=cleanup_dir
    )
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with code {proc.returncode} during startup; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            if _mariadb_ready(host, port):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mariadbd did not accept connections on {host}:{port} within "
                    f"{_STARTUP_TIMEOUT:.0f}s; log {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


class RedisServer:
    """Handle for a private redis-server started by :func:`start_redis`."""

    def __init__(
        self, proc: subprocess.Popen, host: str, port: int, log_path: pathlib.Path
    ) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"<RedisServer {self.host}:{self.port} pid={self.proc.pid}>"

    @property
    def url(self) -> str:
        """redis:// URL for database 0."""
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 10 s)."""
        _stop_process(self.proc)


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(base_dir: pathlib.Path) -> RedisServer:
    """Start a non-persistent redis-server on 127.0.0.1 (a free port).

    Raises :class:`ServiceUnavailable` when ``redis-server`` is not installed,
    :class:`RuntimeError` when it does not answer PING within 30 seconds.
    """
    base_dir = pathlib.Path(base_dir)
    binary = _which("redis-server")
    if not binary:
        raise ServiceUnavailable(
            "'redis-server' not found on PATH; install the Debian package "
            "'redis-server'."
        )
    base_dir.mkdir(parents=True, exist_ok=True)
    log_path = base_dir / "redis.log"
    host = "127.0.0.1"
    port = free_port()
    cmd = [
        binary,
        "--port", str(port),
        "--bind", host,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(base_dir),
        "--daemonize", "no",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(base_dir),
            start_new_session=True,
        )
    server = RedisServer(proc, host, port, log_path)
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not _redis_ping(host, port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {proc.returncode} during "
                    f"startup; log {log_path}:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not answer PING on {host}:{port} within "
                    f"{_STARTUP_TIMEOUT:.0f}s; log {log_path}:\n{_tail(log_path)}"
                )
            time.sleep(0.02)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# S3 (moto)
# --------------------------------------------------------------------------


class S3Server:
    """Handle for an in-process moto S3 server started by :func:`start_s3`.

    Note: moto keeps its backend state per Python process, so several
    ``S3Server`` instances in one process share buckets.
    """

    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, server, host: str, port: int) -> None:
        self._server = server
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"<S3Server {self.endpoint}>"

    @property
    def endpoint(self) -> str:
        """``host:port`` (the form the minio SDK expects)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port`` endpoint URL (the form boto3 expects)."""
        return f"http://{self.endpoint}"

    def stop(self) -> None:
        """Shut the server thread down."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def start_s3() -> S3Server:
    """Start moto's S3-compatible server in a thread on 127.0.0.1.

    Raises :class:`ServiceUnavailable` when moto (with its server extra) is
    not importable.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise ServiceUnavailable(
            f"moto server is not importable ({exc}); install it with "
            "`pip install 'moto[server]'`."
        ) from exc
    host = "127.0.0.1"
    # Bind port 0 and read the real port back: ThreadedMotoServer.start()
    # waits forever if binding a pre-chosen port fails, so avoid the race.
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not _tcp_open(host, port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not listen on {host}:{port}")
            time.sleep(0.02)
    except BaseException:
        server.stop()
        raise
    return S3Server(server, host, port)


# --------------------------------------------------------------------------
# ffmpeg
# --------------------------------------------------------------------------


def find_ffmpeg() -> tuple[str, str]:
    """Return the paths of ``ffmpeg`` and ``ffprobe``.

    Raises :class:`ServiceUnavailable` when either is not on PATH.
    """
    ffmpeg = shutil.which("ffmpeg")
    ffprobe = shutil.which("ffprobe")
    if not ffmpeg or not ffprobe:
        missing = "ffmpeg" if not ffmpeg else "ffprobe"
        raise ServiceUnavailable(
            f"'{missing}' not found on PATH; install the Debian package 'ffmpeg'."
        )
    return ffmpeg, ffprobe
