"""Smoke tests for the real-service launchers in learnsail.testing.services."""

import io
import os
import socket
import subprocess
import urllib.request
import uuid

import pytest

from learnsail.testing import services
from learnsail.testing.services import ServiceUnavailable

REQUIRE = os.environ.get("LEARNSAIL_REQUIRE_SERVICES") == "1"


def _unavailable(exc):
    if REQUIRE:
        pytest.fail(f"LEARNSAIL_REQUIRE_SERVICES=1 but service unavailable: {exc}")
    pytest.skip(str(exc))


def _import(name):
    try:
        return __import__(name)
    except ImportError as exc:
        _unavailable(ServiceUnavailable(f"{name} not importable: {exc}"))


def test_free_port():
    port = services.free_port()
    assert 1024 <= port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_mariadb_utf8mb4_roundtrip(tmp_path):
    sqlalchemy = _import("sqlalchemy")
    try:
        server = services.start_mariadb(tmp_path)
    except ServiceUnavailable as exc:
        _unavailable(exc)
    try:
        assert server.host == "127.0.0.1"
        assert server.user == "root"
        url = server.create_database("ls_test")
        assert url == server.url("ls_test")
        assert url == (
            f"mysql+mysqldb://root@127.0.0.1:{server.port}/ls_test?charset=utf8mb4"
        )
        engine = sqlalchemy.create_engine(url)
        text = "学习🚀"
        try:
            with engine.begin() as conn:
                conn.execute(
                    sqlalchemy.text(
                        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50))"
                    )
                )
                conn.execute(
                    sqlalchemy.text("INSERT INTO t VALUES (1, :v)"), {"v": text}
                )
            with engine.connect() as conn:
                got = conn.execute(sqlalchemy.text("SELECT v FROM t")).scalar_one()
                collation = conn.execute(
                    sqlalchemy.text("SELECT @@collation_database")
                ).scalar_one()
        finally:
            engine.dispose()
        assert got == text
        assert collation == "utf8mb4_unicode_ci"
        server.drop_database("ls_test")
    finally:
        server.stop()
    assert server.proc.poll() is not None


def _redis_cmd(sock, *args):
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    sock.sendall(payload)
    return sock.recv(4096)


def test_redis_ping_set_get(tmp_path):
    try:
        server = services.start_redis(tmp_path)
    except ServiceUnavailable as exc:
        _unavailable(exc)
    try:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        try:
            import redis
        except ImportError:
            with socket.create_connection(("127.0.0.1", server.port), 5) as s:
                assert _redis_cmd(s, "PING") == b"+PONG\r\n"
                assert _redis_cmd(s, "SET", "k", "v") == b"+OK\r\n"
                assert _redis_cmd(s, "GET", "k") == b"$1\r\nv\r\n"
        else:
            client = redis.Redis.from_url(server.url)
            try:
                assert client.ping()
                assert client.set("k", "学习")
                assert client.get("k").decode() == "学习"
            finally:
                client.close()
    finally:
        server.stop()
    assert server.proc.poll() is not None


def test_s3_minio_roundtrip():
    minio = _import("minio")
    try:
        server = services.start_s3()
    except ServiceUnavailable as exc:
        _unavailable(exc)
    try:
        assert server.url == f"http://{server.endpoint}"
        client = minio.Minio(
            server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
            secure=False,
            region=server.region,
        )
        bucket = f"ls-test-{uuid.uuid4().hex[:12]}"
        client.make_bucket(bucket)
        assert client.bucket_exists(bucket)
        data = b"hello learnsail \xf0\x9f\x9a\x80"
        client.put_object(
            bucket, "dir/obj.bin", io.BytesIO(data), len(data),
            content_type="application/octet-stream",
        )
        resp = client.get_object(bucket, "dir/obj.bin")
        try:
            assert resp.read() == data
        finally:
            resp.close()
            resp.release_conn()
        presigned = client.presigned_get_object(bucket, "dir/obj.bin")
        assert presigned.startswith(server.url)
        with urllib.request.urlopen(presigned, timeout=10) as fh:
            assert fh.read() == data
    finally:
        server.stop()


def test_ffmpeg_found():
    try:
        ffmpeg, ffprobe = services.find_ffmpeg()
    except ServiceUnavailable as exc:
        _unavailable(exc)
    for binary in (ffmpeg, ffprobe):
        out = subprocess.run(
            [binary, "-version"], capture_output=True, text=True, timeout=30,
            check=True,
        )
        assert "version" in out.stdout
