"""Builders the upload tests share: clips made with lavfi, chunked uploads
through the API, a live HTTP server for the tus client, and fixtures
(import them into a test module to use them)."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

INIT = "/api/v1/videos/upload/init"
CHUNK = "/api/v1/videos/upload/chunk"
COMPLETE = "/api/v1/videos/upload/complete"
SINGLE = "/api/v1/videos/upload"
TUS = "/api/v1/videos/tus"

KIB = 1024
MIB = 1024 * 1024

_made: dict[str, dict[str, Path]] = {}


def make_clips(ffmpeg: str, directory: Path) -> dict[str, Path]:
    """Tiny test files, made once per process:

    - ``small``: 2 s of 320x240 test pattern and a sine, H.264/AAC MP4 (~55 KB);
    - ``medium``: 2 s of 640x360, lossless H.264 (~1 MB: four chunks of 256 KiB);
    - ``large``: 2 s of raw 320x240 video in Matroska (~5.8 MB: two chunks of 5 MiB);
    - ``sound``: sound only, in an MP4 container (sniffed as video/mp4, ffprobe finds no video);
    - ``text``: a text file named like a video.
    """
    key = str(directory)
    if key in _made:
        return _made[key]
    directory.mkdir(parents=True, exist_ok=True)
    clips = {name: directory / f"{name}{ext}" for name, ext in
             (("small", ".mp4"), ("medium", ".mp4"), ("large", ".mkv"), ("sound", ".mp4"), ("text", ".mp4"))}
    run = [ffmpeg, "-v", "error", "-y"]
    subprocess.run(run + ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i",
                          "sine=frequency=440", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
                          "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clips["small"])], check=True)
    subprocess.run(run + ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-c:v", "libx264",
                          "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(clips["medium"])],
                   check=True)
    subprocess.run(run + ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2", "-c:v", "rawvideo",
                          "-pix_fmt", "yuv420p", str(clips["large"])], check=True)
    subprocess.run(run + ["-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac", "-f", "mp4",
                          str(clips["sound"])], check=True)
    clips["text"].write_text("Not a video at all, whatever its name says.\n" * 50)
    _made[key] = clips
    return clips


@pytest.fixture(scope="session")
def clips(ffmpeg, tmp_path_factory) -> dict[str, bytes]:
    """The clips' bytes by name (see :func:`make_clips`)."""
    paths = make_clips(ffmpeg[0], tmp_path_factory.getbasetemp() / "video-clips")
    return {name: path.read_bytes() for name, path in paths.items()}


@pytest.fixture(scope="session")
def clip_paths(ffmpeg, tmp_path_factory) -> dict[str, Path]:
    return make_clips(ffmpeg[0], tmp_path_factory.getbasetemp() / "video-clips")


@pytest.fixture(autouse=True)
def handed_off(request, monkeypatch) -> list[int]:
    """The ids of the videos handed to processing.  Transcoding itself is
    the media side's, tested there: here the hand-off only records (unless
    the test also asks for the ``real_processing`` fixture)."""
    from learnsail_video import uploads

    seen: list[int] = []
    if "real_processing" in request.fixturenames:
        return seen

    def record(session, video):
        video.status, video.progress = "processing", 0
        seen.append(video.id)

    monkeypatch.setattr(uploads, "start_processing", record)
    return seen


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def init(testapp, headers, data: bytes, chunk_size: int, *, status: int = 201, filename: str = "lecture.mp4",
         **body: Any):
    payload = {"filename": filename, "file_size": len(data), "file_md5": md5(data), "chunk_size": chunk_size,
               "total_chunks": len(chunks_of(data, chunk_size)), **body}
    return testapp.post_json(INIT, payload, headers=headers, status=status)


def send_chunk(testapp, headers, task_id: str, index: int, data: bytes, *, status: int = 200, **fields: Any):
    params = [("task_id", task_id), ("chunk_index", str(index))] + [(k, str(v)) for k, v in fields.items()]
    return testapp.post(CHUNK, params, headers=headers, upload_files=[("chunk_data", "chunk.bin", data)],
                        status=status)


def upload(testapp, headers, data: bytes, chunk_size: int, *, order=None, **body: Any) -> tuple[dict, Any]:
    """A whole chunked upload: (the task as created, the last chunk's answer)."""
    task = init(testapp, headers, data, chunk_size, **body).json
    pieces = chunks_of(data, chunk_size)
    last = None
    for index in order if order is not None else range(len(pieces)):
        last = send_chunk(testapp, headers, task["task_id"], index, pieces[index], status="*")
    return task, last


def status_of(testapp, headers, task_id: str, status: int = 200):
    return testapp.get(f"/api/v1/videos/upload/status/{task_id}", headers=headers, status=status)


def stored_bytes(storage, key: str) -> bytes:
    with storage.open(key) as stream:
        return stream.read()


def keys_under(storage, prefix: str) -> list[str]:
    return list(storage.iter_keys(prefix))


class LiveServer:
    """The app under test behind a real HTTP server (waitress, one thread),
    for clients that speak HTTP themselves (tuspy)."""

    def __init__(self, app) -> None:
        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=1, ident="learnsail-test",
                                             clear_untrusted_proxy_headers=True)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, name="learnsail-live", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def real_processing():
    """Ask for it to let uploads reach learnsail_video.processing.start."""
    return True


@pytest.fixture(scope="session")
def _live_servers():
    servers: dict[int, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def live_server(app, _live_servers) -> LiveServer:
    """The app under test (bound to this test's database connection, like
    ``testapp``) behind a real HTTP server, one per app for the whole run."""
    server = _live_servers.get(id(app))
    if server is None:
        server = _live_servers[id(app)] = LiveServer(app)
    return server
