"""The size limit (learnsail.video.max_upload_size), checked when an upload
starts and while its bytes arrive."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from video_test_helpers import INIT, KIB, SINGLE, TUS, clips, handed_off, keys_under, md5  # noqa: F401

LIMIT = 200 * KIB


@pytest.fixture(scope="session")
def learnsail_extra_settings(learnsail_extra_settings):
    return {**learnsail_extra_settings, "learnsail.video.max_upload_size": str(LIMIT),
            "learnsail.cors_origins": "https://app.example.edu"}


@pytest.fixture
def teacher(make_user, auth_headers):
    return auth_headers(make_user("teacher"))


def test_init_and_tus_creation_refuse_a_file_over_the_limit(testapp, teacher):
    body = {"filename": "a.mp4", "file_size": LIMIT + 1, "file_md5": md5(b"x"), "chunk_size": 256 * KIB,
            "total_chunks": 1}
    assert testapp.post_json(INIT, body, headers=teacher, status=413).json["error"]["details"]["max_bytes"] == LIMIT
    testapp.post(TUS, headers={**teacher, "Tus-Resumable": "1.0.0", "Upload-Length": str(LIMIT + 1)}, status=413)
    testapp.post(TUS, headers={**teacher, "Tus-Resumable": "1.0.0", "Upload-Length": str(LIMIT)}, status=201)


def test_a_single_upload_stops_at_the_limit_while_streaming(app, teacher, clips, dbsession):
    """A body of unknown length (chunked transfer encoding) is read only up
    to the limit, then refused with 413; nothing is left behind."""
    from webob import Request

    from learnsail_video.models import Video

    storage = app.registry["learnsail.storage"]
    objects = set(keys_under(storage, ""))
    videos = dbsession.scalar(sa.select(sa.func.count()).select_from(Video))
    boundary = "videoboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n").encode()

    class Endless(io.RawIOBase):
        def __init__(self):
            self.sent = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            data = head if self.sent == 0 else b"\0" * len(buffer)
            count = min(len(buffer), len(data))
            buffer[:count] = data[:count]
            self.sent += count
            return count

    stream = Endless()
    request = Request.blank(SINGLE, method="POST", headers={
        **teacher, "Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"})
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = io.BufferedReader(stream)
    request.environ["wsgi.input_terminated"] = True
    request.environ["REMOTE_ADDR"] = "127.0.0.1"
    response = request.get_response(app)
    assert response.status_int == 413 and response.json["error"]["details"]["max_bytes"] == LIMIT
    assert stream.sent < LIMIT + 1024 * KIB  # stopped near the limit, not read forever
    dbsession.expire_all()
    assert dbsession.scalar(sa.select(sa.func.count()).select_from(Video)) == videos
    assert set(keys_under(storage, "")) == objects


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(testapp, teacher, clips):
    response = testapp.post(SINGLE, headers=teacher, upload_files=[("file", "a.mp4", clips["medium"])],
                            status=413)
    assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_browser_client_may_read_the_tus_headers(testapp, teacher):
    """tus-js-client and Uppy run in browsers: on an allowed origin the tus
    headers are exposed, and the preflight carries Tus-Resumable too."""
    origin = {"Origin": "https://app.example.edu"}
    created = testapp.post(TUS, headers={**teacher, **origin, "Tus-Resumable": "1.0.0", "Upload-Length": "10"},
                           status=201)
    exposed = {h.strip() for h in created.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Tus-Resumable", "X-Request-ID"} <= exposed
    preflight = testapp.options(created.headers["Location"], headers={
        **origin, "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "Authorization, Tus-Resumable, Upload-Offset, Content-Type"}, status=204)
    assert preflight.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Offset" in preflight.headers["Access-Control-Allow-Headers"]
