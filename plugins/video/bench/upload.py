"""A large video upload through chunks and through tus, measured (not asserted).

Goals (issue 6): throughput at least 0.7x a raw copy of the same bytes, and
a flat peak RSS of the server process under 150 MiB, into local storage.

    .venv/bin/python plugins/video/bench/upload.py [--size-mib 1024] [--chunk-mib 8] [--rounds 1]

What runs:

1. A video of about ``--size-mib`` MiB is generated with ffmpeg (raw
   1280x720 frames of lavfi's test pattern in Matroska: a real video, so
   the upload completes -- MD5, sniffing, ffprobe -- and cheap to make) in a
   temporary directory, removed at the end.  Its MD5 is computed once
   (client-side work, printed, not counted).
2. **raw copy**: ``shutil.copyfileobj`` of that file to another file in the
   same directory (1 MiB buffer), in a fresh interpreter after
   ``os.sync()`` -- the baseline.
3. **chunks**: a fresh ``learnsail serve`` (waitress, 8 threads, SQLite,
   local storage in the same directory, plugins courses and video) in its
   own process; a client in this process (``requests``) sends
   ``POST /api/v1/videos/upload/init``, then the chunks of ``--chunk-mib``
   MiB in order, one at a time, as multipart; the last one completes the
   upload.  Timed from the init to the last answer.
4. **tus**: the same with the tuspy client (``chunk_size`` ``--chunk-mib``
   MiB, ``Upload-Checksum`` sha1 on every PATCH, as a standard tus client:
   no ``file_md5`` in the metadata, so no whole-file MD5 on the server).
5. **HTTP floor**: the same two clients against a bare WSGI app on the
   same waitress (8 threads, its defaults, as ``learnsail serve`` runs it)
   that reads each body and throws it away (a minimal tus server for
   tuspy): what moving the bytes over HTTP in Python costs on this machine
   before the app does anything.  Our uploads are also given as a ratio
   of it.
6. The same uploads of a ``--small-mib`` file (default 128 MiB), so the
   server's peak RSS at two sizes shows whether memory stays flat.

Processing is not measured here (the broker is ``memory://``: the
transcode task is sent nowhere; see bench/transcode.py).  The server's
memory is read from ``/proc/<pid>/status``: ``VmRSS`` once it serves (before
the upload) and ``VmHWM`` (its peak) after.  Client and server share the
machine's cores, and the client's own work (multipart encoding, tuspy's
reads and SHA-1) is inside the timing, as for a client on the same host.
Every measurement is made ``--rounds`` times and the best kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024
FRAME = 1280 * 720 * 3 // 2  # one raw yuv420p frame
SECRET = "bench-secret-bench-secret-bench-secret-0123"


def proc_status(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_video(path: Path, size: int, ffmpeg: str) -> None:
    frames = max(1, size // FRAME)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25",
                    "-frames:v", str(frames), "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(path)], check=True)


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def raw_copy(src: Path, work: Path) -> float:
    """The baseline, in a fresh interpreter."""
    os.sync()
    code = ("import shutil,sys,time\n"
            "t=time.perf_counter()\n"
            "with open(sys.argv[1],'rb') as s, open(sys.argv[2],'wb') as d: shutil.copyfileobj(s,d,1<<20)\n"
            "print(time.perf_counter()-t)")
    dst = work / "raw-copy.bin"
    out = subprocess.run([sys.executable, "-c", code, str(src), str(dst)], check=True, capture_output=True,
                         text=True)
    dst.unlink()
    return float(out.stdout.strip())


# --- the server ------------------------------------------------------------------------------

def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")}
    env.update({
        "LEARNSAIL_DATA_DIR": str(data_dir),
        "LEARNSAIL_DATABASE_URL": f"sqlite:///{data_dir / 'bench.sqlite'}",
        "LEARNSAIL_PLUGINS": "courses,video",
        "LEARNSAIL_SECRET": SECRET,
        "LEARNSAIL_LOG_LEVEL": "WARNING",
        "LEARNSAIL_BROKER_URL": "memory://",  # the transcode task goes nowhere: only the upload is measured
        "LEARNSAIL_VIDEO_MAX_UPLOAD_SIZE": "8GiB",
    })
    return env


def prepare(data_dir: Path) -> str:
    """Migrate the database and make a teacher; returns their bearer token."""
    code = """
import os, transaction
from learnsail import migrations
from learnsail.app import configure
from learnsail.db import get_session
from learnsail.identity import tokens
from learnsail.identity.services import create_user
config = configure({}, environ=os.environ)
registry = config.registry
migrations.upgrade(registry.settings, registry["learnsail.plugins"])
tm = transaction.TransactionManager(explicit=True)
session = get_session(registry["learnsail.dbsession_factory"], tm)
session.info.update({"learnsail.registry": registry, "learnsail.tm": tm})
tm.begin()
user = create_user(session, password="correct horse battery", role="teacher", username="bench-teacher",
                   email="bench@example.edu", pm=registry["learnsail.pm"])
session.flush()
token = tokens.issue(registry.settings, user.id, "access", 86400, role="teacher")
tm.commit()
print(token)
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=environment(data_dir), cwd=ROOT)
    return out.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path) -> None:
        import requests

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        learnsail = Path(sys.executable).with_name("learnsail")
        self.process = subprocess.Popen(
            [str(learnsail), "serve", "--port", str(self.port), "--no-scheduler", "--no-realtime"],
            env=environment(data_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        self.rss_before = proc_status(self.process.pid, "VmRSS")

    def peak(self) -> float:
        return proc_status(self.process.pid, "VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


FLOOR_APP = """
import json, sys, waitress
offsets = {}
def app(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    body, n = environ["wsgi.input"], 0
    while True:
        block = body.read(256 * 1024)
        if not block:
            break
        n += len(block)
    headers = [("Content-Type", "application/json"), ("Tus-Resumable", "1.0.0")]
    if path == "/healthz" or path.endswith("/init"):
        start_response("200 OK", headers)
        return [json.dumps({"task_id": "floor"}).encode()]
    if path.startswith("/api/v1/videos/upload/status/"):
        start_response("200 OK", headers)
        return [json.dumps({"status": "processing", "file_size": -1}).encode()]
    if path == "/api/v1/videos/tus" and method == "POST":
        offsets["x"] = 0
        start_response("201 Created", headers + [("Location", "/api/v1/videos/tus/x")])
        return [b""]
    if path.startswith("/api/v1/videos/tus/"):
        if method == "PATCH":
            offsets["x"] += n
        start_response("204 No Content" if method == "PATCH" else "200 OK",
                       headers + [("Upload-Offset", str(offsets.get("x", 0)))])
        return [b""]
    start_response("200 OK", headers)
    return [json.dumps({"received": n}).encode()]
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, ident="floor")
"""


class FloorServer(Server):
    """A bare WSGI app on the same waitress: the HTTP floor."""

    def __init__(self) -> None:  # noqa: D107 -- same probing and memory reading as Server
        import requests

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-c", FLOOR_APP, str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/healthz", timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError("the floor server did not start") from None
                time.sleep(0.1)
        self.rss_before = proc_status(self.process.pid, "VmRSS")


# --- the clients ---------------------------------------------------------------------------------

def upload_chunks(server: Server, token: str, src: Path, digest: str, chunk: int) -> tuple[float, dict]:
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    size = src.stat().st_size
    total = -(-size // chunk)
    http = requests.Session()
    start = time.perf_counter()
    task = http.post(server.url + "/api/v1/videos/upload/init", headers=headers, json={
        "filename": src.name, "file_size": size, "file_md5": digest, "chunk_size": chunk, "total_chunks": total,
        "title": "Bench upload"})
    task.raise_for_status()
    task_id = task.json()["task_id"]
    with open(src, "rb") as handle:
        for index in range(total):
            answer = http.post(server.url + "/api/v1/videos/upload/chunk", headers=headers,
                               data={"task_id": task_id, "chunk_index": str(index)},
                               files={"chunk_data": ("chunk", handle.read(chunk), "application/octet-stream")})
            if answer.status_code != 200:
                raise RuntimeError(f"chunk {index}: {answer.status_code} {answer.text[:500]}")
    elapsed = time.perf_counter() - start
    status = http.get(server.url + f"/api/v1/videos/upload/status/{task_id}", headers=headers).json()
    return elapsed, status


def upload_tus(server: Server, token: str, src: Path, digest: str, chunk: int) -> tuple[float, dict]:
    import requests
    from tusclient import client

    headers = {"Authorization": f"Bearer {token}"}
    tus = client.TusClient(server.url + "/api/v1/videos/tus", headers=headers)
    start = time.perf_counter()
    # as a standard tus client: a checksum on every PATCH, no whole-file MD5 (tus has none)
    uploader = tus.uploader(str(src), chunk_size=chunk, upload_checksum=True,
                            metadata={"filename": src.name, "title": "Bench upload"})
    uploader.upload()
    elapsed = time.perf_counter() - start
    task_id = uploader.url.rsplit("/", 1)[1]
    status = requests.get(server.url + f"/api/v1/videos/upload/status/{task_id}", headers=headers).json()
    return elapsed, status


def measure(mode: str, src: Path, digest: str, chunk: int, work: Path, floor: bool = False) -> dict:
    run = upload_chunks if mode == "chunks" else upload_tus
    if floor:
        server: Server = FloorServer()
        try:
            seconds, _ = run(server, "none", src, digest, chunk)
            return {"seconds": seconds, "rss_before": server.rss_before, "peak": server.peak()}
        finally:
            server.stop()
    data_dir = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    token = prepare(data_dir)
    server = Server(data_dir)
    try:
        seconds, status = run(server, token, src, digest, chunk)
        peak = server.peak()
    finally:
        server.stop()
    if status.get("status") not in ("processing", "completed") or status.get("file_size") != src.stat().st_size:
        raise RuntimeError(f"{mode}: the upload did not complete: {json.dumps(status)[:800]}")
    stored = sum(f.stat().st_size for f in (data_dir / "files" / "video").rglob("*") if f.is_file())
    if stored != src.stat().st_size:
        raise RuntimeError(f"{mode}: {stored} bytes stored, not {src.stat().st_size}")
    shutil.rmtree(data_dir)
    return {"seconds": seconds, "rss_before": server.rss_before, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=128, help="second size, for the flatness of memory (0: skip)")
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        sys.exit("ffmpeg is needed to generate the video")
    chunk = args.chunk_mib * MIB
    sizes = [args.size_mib] + ([args.small_mib] if args.small_mib else [])
    report = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="learnsail-bench-video-upload-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        for size_mib in sizes:
            src = work / f"bench-{size_mib}.mkv"
            print(f"generating a {size_mib} MiB video in {work} ...", flush=True)
            make_video(src, size_mib * MIB, ffmpeg)
            started = time.perf_counter()
            digest = md5_of(src)
            md5_seconds = time.perf_counter() - started
            results: dict[str, list[dict]] = {"raw": [], "chunks": [], "tus": [], "floor-chunks": [],
                                              "floor-tus": []}
            for round_number in range(args.rounds):
                print(f"  {size_mib} MiB, round {round_number + 1} of {args.rounds} ...", flush=True)
                modes = list(results) if round_number % 2 == 0 else list(results)[::-1]
                for mode in modes:
                    if mode == "raw":
                        results["raw"].append({"seconds": raw_copy(src, work)})
                    else:
                        floor = mode.startswith("floor-")
                        results[mode].append(measure(mode.removeprefix("floor-"), src, digest, chunk, work, floor))
            report[size_mib] = ({name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()},
                                src.stat().st_size, md5_seconds)
            src.unlink()

    print()
    print(f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    for size_mib, (best, size, md5_seconds) in report.items():
        mb = size / 1e6
        raw = best["raw"]["seconds"]
        print(f"upload of {size / MIB:.0f} MiB in chunks of {args.chunk_mib} MiB, best of {args.rounds}")
        print(f"  raw copy (shutil.copyfileobj)     {raw:7.2f} s  {mb / raw:8.1f} MB/s")
        for name, label in (("chunks", "chunks (POST .../upload/chunk)"), ("tus", "tus (tuspy, sha1 checksums)")):
            r, f = best[name], best[f"floor-{name}"]
            print(f"  {label:<34}{r['seconds']:7.2f} s  {mb / r['seconds']:8.1f} MB/s  "
                  f"{raw / r['seconds']:5.2f}x raw copy  {f['seconds'] / r['seconds']:5.2f}x HTTP floor  "
                  f"server RSS {r['rss_before']:.0f} -> peak {r['peak']:.0f} MiB")
            print(f"    {'HTTP floor (bare app, same client)':<32}{f['seconds']:7.2f} s  {mb / f['seconds']:8.1f} MB/s  "
                  f"{raw / f['seconds']:5.2f}x raw copy  server RSS {f['rss_before']:.0f} -> peak {f['peak']:.0f} MiB")
        print(f"  (the client's MD5 of the file beforehand: {md5_seconds:.2f} s, not counted)")
        print()
    print("goals: throughput >= 0.70x a raw copy; server peak RSS flat and < 150 MiB")
    if len(report) > 1:
        big, small = (report[s][0] for s in sizes[:2])
        for name in ("chunks", "tus"):
            print(f"  {name}: peak {big[name]['peak']:.0f} MiB at {sizes[0]} MiB vs {small[name]['peak']:.0f} MiB "
                  f"at {sizes[1]} MiB")


if __name__ == "__main__":
    main()
