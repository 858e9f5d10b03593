"""Upload of a large file through the storage service, measured (not asserted).

Goals (issue 4): throughput at least 0.8x a raw copy of the same bytes, and
a flat peak RSS under 150 MiB, on local storage and on an S3 server.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--rounds 3]

What runs:

1. A file of ``--size-mib`` MiB (an MP4 header, then random bytes) is
   written to a temporary directory.
2. **raw copy**: ``shutil.copyfileobj`` of that file to another file in the
   same directory (1 MiB buffer) -- the baseline.  Like every measurement
   it runs in a fresh interpreter, after ``os.sync()``.
3. **local**: ``learnsail.storage.services.save_upload`` of the file (what
   the upload endpoints and plugins call: type sniffing, SHA-256, the
   put into ``LocalStorage``, the ``files`` row on SQLite, the commit), in a
   fresh interpreter so its peak RSS is its own.
4. **s3**: the same into ``S3Storage`` against moto's S3 server
   (``learnsail.testing.services.start_s3``), which runs in a separate
   process so its memory (moto keeps objects in memory) is not counted; and,
   for reference, the ``minio`` SDK's own ``put_object`` of the same file
   (same part size and parallelism as the storage service).
   Also for reference: ``LocalStorage.put`` of the file alone (no type
   check, no SHA-256, no database), which shows what the checksum costs.
   moto is a Python server, so the S3 figures measure it as much as us: the
   ratio against the raw copy is printed, and absolute MB/s.

Each measurement is made ``--rounds`` times, interleaved (every other round
in reverse order); the best is kept.
RSS: ``VmRSS`` once the app is built (before the upload) and the process's
peak (``ru_maxrss``) after it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41" + b"\x00" * 8


def vm_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def make_source(path: Path, size: int) -> None:
    block = os.urandom(8 * MIB)
    with open(path, "wb") as out:
        out.write(HEADER)
        left = size - len(HEADER)
        while left > 0:
            chunk = block[:left]
            out.write(chunk)
            left -= len(chunk)


# --- the measured side, in a fresh interpreter ------------------------------------------

def child(mode: str, src: Path, work: Path, s3_endpoint: str) -> dict:
    if mode == "raw":
        dst = work / "raw-copy.bin"
        rss_before = vm_rss_mib()
        start = time.perf_counter()
        with open(src, "rb") as source, open(dst, "wb") as target:
            shutil.copyfileobj(source, target, MIB)
        elapsed = time.perf_counter() - start
        dst.unlink()
        return {"seconds": elapsed, "rss_before": rss_before, "peak": peak_rss_mib()}
    if mode == "minio":
        from minio import Minio

        client = Minio(s3_endpoint, access_key="testing", secret_key="testing", secure=False)
        bucket = "bench-raw"
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        rss_before = vm_rss_mib()
        start = time.perf_counter()
        with open(src, "rb") as data:
            client.put_object(bucket, "raw.mp4", data, src.stat().st_size, content_type="video/mp4",
                              part_size=8 * MIB, num_parallel_uploads=2)
        elapsed = time.perf_counter() - start
        client.remove_object(bucket, "raw.mp4")
        return {"seconds": elapsed, "rss_before": rss_before, "peak": peak_rss_mib()}

    if mode == "put":
        from learnsail.storage.backends import LocalStorage

        storage = LocalStorage(Path(tempfile.mkdtemp(dir=work, prefix="put-")), "bench-secret")
        rss_before = vm_rss_mib()
        start = time.perf_counter()
        with open(src, "rb") as data:
            storage.put("video/raw.mp4", data, src.stat().st_size, "video/mp4")
        elapsed = time.perf_counter() - start
        storage.delete("video/raw.mp4")
        return {"seconds": elapsed, "rss_before": rss_before, "peak": peak_rss_mib()}

    import transaction

    from learnsail import migrations
    from learnsail.app import configure
    from learnsail.db import get_session
    from learnsail.storage import services

    data_dir = Path(tempfile.mkdtemp(dir=work, prefix=f"{mode}-"))
    settings = {"learnsail.data_dir": str(data_dir), "learnsail.plugins": "", "learnsail.log_level": "WARNING",
                "learnsail.secret": "bench-secret-bench-secret-bench-secret",
                "learnsail.storage_size_limits": "video=4GiB"}
    if mode == "s3":
        settings["learnsail.storage_url"] = f"s3://testing:testing@{s3_endpoint}/bench-service?secure=false"
    config = configure(settings, environ={})
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    registry = config.registry
    tm = transaction.TransactionManager(explicit=True)
    session = get_session(registry["learnsail.dbsession_factory"], tm)
    session.info.update({"learnsail.registry": registry, "learnsail.tm": tm})
    storage = registry["learnsail.storage"]
    rss_before = vm_rss_mib()
    start = time.perf_counter()
    tm.begin()
    with open(src, "rb") as data:
        stored = services.save_upload(session, data, "lecture.mp4", owner_id=None, accept=("video/mp4",))
    key, size = stored.storage_key, stored.size
    tm.commit()
    elapsed = time.perf_counter() - start
    peak = peak_rss_mib()
    assert storage.stat(key).size == size == src.stat().st_size, "the stored object has the wrong size"
    storage.delete(key)
    return {"seconds": elapsed, "rss_before": rss_before, "peak": peak}


def run_child(mode: str, src: Path, work: Path, s3_endpoint: str = "") -> dict:
    os.sync()
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--src", str(src), "--work", str(work),
         "--s3-endpoint", s3_endpoint],
        check=True, capture_output=True, text=True, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("LEARNSAIL_")})
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- moto in its own process ------------------------------------------------------------

def _serve_s3(conn) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from learnsail.testing.services import start_s3

    server = start_s3()
    conn.send(server.endpoint)
    conn.recv()  # until told to stop
    server.stop()


# --- the report ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--s3-endpoint", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child, Path(args.src), Path(args.work), args.s3_endpoint)))
        return

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="learnsail-bench-upload-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        src = work / "source.mp4"
        print(f"writing a {args.size_mib} MiB file to {work} ...", flush=True)
        make_source(src, size)

        context = multiprocessing.get_context("spawn")
        parent, child_end = context.Pipe()
        server = context.Process(target=_serve_s3, args=(child_end,), daemon=True)
        server.start()
        endpoint = parent.recv()
        results: dict[str, list[dict]] = {"raw": [], "local": [], "put": [], "s3": [], "minio": []}
        try:
            modes = list(results)
            for round_number in range(args.rounds):
                print(f"round {round_number + 1} of {args.rounds} ...", flush=True)
                # every other round in reverse order, so no measurement always follows the same one
                for mode in (modes if round_number % 2 == 0 else modes[::-1]):
                    results[mode].append(run_child(mode, src, work, endpoint))
        finally:
            parent.send("stop")
            server.join(timeout=30)

    best = {name: min(runs, key=lambda r: r["seconds"]) for name, runs in results.items()}
    mb = size / 1e6

    def rate(name: str) -> float:
        return mb / best[name]["seconds"]

    print()
    print(f"upload of {args.size_mib} MiB, best of {args.rounds} rounds")
    print(f"  raw copy (shutil.copyfileobj)      {best['raw']['seconds']:7.2f} s  {rate('raw'):8.1f} MB/s")
    for name, label in (("local", "save_upload -> local storage"), ("put", "LocalStorage.put alone (reference)"),
                        ("s3", "save_upload -> S3 (moto)"),
                        ("minio", "minio put_object -> S3 (reference)")):
        r = best[name]
        print(f"  {label:<35}{r['seconds']:7.2f} s  {rate(name):8.1f} MB/s  "
              f"{rate(name) / rate('raw'):5.2f}x raw copy  RSS {r['rss_before']:.0f} -> peak {r['peak']:.0f} MiB")
    print()
    print("goals: throughput >= 0.80x a raw copy; peak RSS flat and < 150 MiB")
    print(f"  local: {rate('local') / rate('raw'):.2f}x, peak {best['local']['peak']:.0f} MiB "
          f"(+{best['local']['peak'] - best['local']['rss_before']:.0f} MiB during the upload)")
    print(f"  s3:    {rate('s3') / rate('raw'):.2f}x of the raw copy, {rate('s3') / rate('minio'):.2f}x of the "
          f"SDK alone, peak {best['s3']['peak']:.0f} MiB "
          f"(+{best['s3']['peak'] - best['s3']['rss_before']:.0f} MiB during the upload)")


if __name__ == "__main__":
    main()
