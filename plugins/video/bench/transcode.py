"""The transcode pipeline, measured (not asserted).

Generates a test clip (default: 60 s of 1920x1080 at 30 fps with a sine
tone, testsrc2 -- made with ultrafast, not timed), then times, in one run:

1. **our pipeline**: ``learnsail_video.transcode.transcode()`` -- the single
   ffmpeg pass to the HLS ladder (SD, HD, FHD for a 1080p source) with the
   sprite thumbnails, plus the MP4 fallback remux, the poster and the sprite
   sheets, with progress parsing -- at the default preset (veryfast);
2. **the bare command**: the same single ffmpeg command we issue (from
   ``ladder_command``), run alone, without progress or the steps after it;
3. **001's way**: one ffmpeg run per level, each decoding the source again,
   each an MP4 with +faststart, with 001's presets (medium; slow for FHD);
4. the same per-level runs at our preset, to show what decoding once buys
   by itself.

For each: wall seconds and CPU seconds (user + system of the ffmpeg
processes and of this one).  Goals: our pipeline <= 0.6x of 001's way, and <= 1.1x of the
bare command.  On a shared machine the wall clock is noisy; CPU time is
the steadier figure.

    .venv/bin/python plugins/video/bench/transcode.py [--seconds 60] [--height 1080] [--preset veryfast]
        [--skip-001]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learnsail_video import transcode  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of the ffmpeg processes and of this one (progress parsing, sprite tiling)."""
    total = 0.0
    for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def timed(label: str, work) -> tuple[float, float]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    work()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    print(f"  {label:<46} wall {wall:8.1f} s   cpu {cpu:8.1f} s", flush=True)
    return wall, cpu


def make_clip(path: Path, seconds: int, width: int, height: int) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "128k", "-shortest", str(path)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--height", type=int, default=1080, help="source height (16:9)")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset of our pipeline")
    parser.add_argument("--skip-001", action="store_true", help="skip 001's presets (medium/slow: the longest run)")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed")
        return 1
    width = args.height * 16 // 9 // 2 * 2
    options = transcode.Options(preset=args.preset)
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        base = Path(tmp)
        source = base / "source.mp4"
        print(f"source: {args.seconds} s of {width}x{args.height} at 30 fps (testsrc2 + sine), "
              f"preset {args.preset}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} "
              f"CPU(s)", flush=True)
        make_clip(source, args.seconds, width, args.height)
        rungs = transcode.plan_ladder(width, args.height, levels=options.levels)
        print(f"ladder: {', '.join(f'{r.quality} {r.resolution} @ {r.video_bitrate // 1000}k' for r in rungs)}")
        interval = transcode.sprite_interval_for(args.seconds, options.sprite_interval)

        def ours() -> None:
            out = base / "ours"
            out.mkdir()
            transcode.transcode(source, out, width=width, height=args.height, duration=float(args.seconds),
                                frame_rate=30.0, has_audio=True, options=options, on_progress=lambda p: None)

        def bare() -> None:
            out = base / "bare"
            (out / "thumbs" / "frames").mkdir(parents=True)
            transcode.run_ffmpeg(transcode.ladder_command(source, out, rungs, frame_rate=30.0, has_audio=True,
                                                          options=options, sprite_interval=interval))

        def per_level(preset: str | None, name: str):
            def run() -> None:
                out = base / name
                out.mkdir()
                for command in transcode.baseline_commands(source, out, rungs, preset=preset):
                    transcode.run_ffmpeg(command)
            return run

        print("runs:")
        ours_wall, ours_cpu = timed("our pipeline (one pass + mp4, poster, sprites)", ours)
        bare_wall, bare_cpu = timed("the bare ladder command alone", bare)
        same_wall, same_cpu = timed(f"one run per level at {args.preset}", per_level(args.preset, "same"))
        spec = None
        if not args.skip_001:
            spec = timed("001's way: one run per level (medium/slow)", per_level(None, "spec"))
        print("ratios (wall; cpu):")
        if spec is not None:
            print(f"  ours / 001's way            {ours_wall / spec[0]:5.2f}x; {ours_cpu / spec[1]:5.2f}x   "
                  f"(goal <= 0.6x)")
        print(f"  ours / per level, same preset {ours_wall / same_wall:5.2f}x; {ours_cpu / same_cpu:5.2f}x")
        print(f"  ours / bare command           {ours_wall / bare_wall:5.2f}x; {ours_cpu / bare_cpu:5.2f}x   "
              f"(goal <= 1.1x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
