"""The ffmpeg pipeline: one decode of the source feeds every rung of an HLS
ladder, an MP4 fallback, a poster and a sprite sheet for scrubbing.

Nothing here knows about the database or the storage: :func:`transcode`
reads a local file and writes a directory::

    out/hls/master.m3u8            the master playlist (BANDWIDTH, RESOLUTION, CODECS)
    out/hls/<quality>/index.m3u8   one media playlist per rung (VOD, #EXT-X-ENDLIST)
    out/hls/<quality>/seg_00000.ts MPEG-TS segments, each starting on a keyframe
    out/video.mp4                  the lowest rung remuxed (no second encode), +faststart
    out/poster.jpg                 a frame from early in the video
    out/thumbs/sprite_000.jpg      thumbnails every N seconds, tiled
    out/thumbs/thumbnails.vtt      a WebVTT track pointing into the sprites (#xywh=)

The ladder follows spec 001's levels (SD 640x360 @ 800k, HD 1280x720 @
2.5M, FHD 1920x1080 @ 5M, 4K 3840x2160 @ 15M) and never upscales: a rung is
made only when the source (as displayed, rotation applied) is at least its
size; a source smaller than SD gets one rung at its own size, and a source
well between two levels gets the upper one at its own size, at a bitrate
scaled by the pixel count.  The aspect ratio is kept and dimensions are
even.  Keyframes are forced every ``keyframe_seconds`` (scene-cut keyframes
off), so every rung's segments start at the same instants and a player can
switch rungs at any segment boundary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

# --- the levels of spec 001 -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Level:
    """A quality level: its name, the box it fits in (landscape) and its video bitrate."""

    name: str
    width: int
    height: int
    video_bitrate: int  # bits per second


LEVELS: tuple[Level, ...] = (
    Level("sd", 640, 360, 800_000),
    Level("hd", 1280, 720, 2_500_000),
    Level("fhd", 1920, 1080, 5_000_000),
    Level("4k", 3840, 2160, 15_000_000),
)
LEVEL_NAMES = tuple(level.name for level in LEVELS)

#: a source this much larger (linear size) than the highest level it fills
#: also gets the next level, at its own size
TOP_UP_RATIO = 1.25


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rendition to make: a level at the size this source gets."""

    quality: str
    width: int
    height: int
    video_bitrate: int

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"


def display_size(width: int, height: int, rotation: int | float | None) -> tuple[int, int]:
    """The picture's size as shown: a quarter turn swaps the sides."""
    turns = round((rotation or 0) / 90) % 4
    return (height, width) if turns % 2 else (width, height)


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def plan_ladder(width: int, height: int, rotation: int | float | None = 0, *,
                levels: Sequence[Level] = LEVELS) -> list[Rung]:
    """The rungs for a source of ``width`` x ``height`` (as stored) turned by
    ``rotation`` degrees, lowest first.  ``levels`` are the levels offered,
    lowest first."""
    if width <= 0 or height <= 0:
        raise ValueError("the source has no picture size")
    levels = sorted(levels, key=lambda level: level.width * level.height)
    if not levels:
        raise ValueError("no quality level is enabled")
    shown_w, shown_h = display_size(width, height, rotation)
    long_side, short_side = max(shown_w, shown_h), min(shown_w, shown_h)

    def fit(level: Level) -> float:
        # the scale that fits the picture in the level's box (portrait boxes turn too)
        return min(level.width / long_side, level.height / short_side)

    def rung(level: Level, scale: float, bitrate: int | None = None) -> Rung:
        return Rung(level.name, _even(shown_w * scale), _even(shown_h * scale),
                    bitrate or level.video_bitrate)

    rungs = [rung(level, fit(level)) for level in levels if fit(level) <= 1.0]
    if not rungs:  # smaller than the lowest level: one rung at the source's own size
        return [rung(levels[0], 1.0)]
    made = len(rungs)
    if made < len(levels) and 1.0 / fit(levels[made - 1]) >= TOP_UP_RATIO:
        upper = levels[made]
        area = (shown_w * shown_h) / (upper.width * upper.height)
        rungs.append(rung(upper, 1.0, int(upper.video_bitrate * max(area, 0.0) // 1000 * 1000)))
    return rungs


# --- options --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Options:
    """How to run ffmpeg (from the plugin's settings)."""

    ffmpeg: str = "ffmpeg"
    preset: str = "veryfast"
    segment_seconds: int = 4
    keyframe_seconds: int = 2
    audio_bitrate: int = 128_000
    sprite_interval: float = 5.0
    sprite_width: int = 160
    sprite_columns: int = 10
    sprite_rows: int = 10
    threads: int = 0
    levels: tuple[Level, ...] = LEVELS


class TranscodeFailed(Exception):
    """ffmpeg failed; the message carries the end of what it said."""


class Cancelled(Exception):
    """Raised by a progress callback to stop ffmpeg (the job was taken away)."""


# --- the ladder command --------------------------------------------------------------


def _profile(rung: Rung) -> str:
    return "main" if rung.height * rung.width <= 640 * 360 else "high"


def sprite_interval_for(duration: float, interval: float) -> float:
    """Seconds between two sprite thumbnails: the setting, but at least ten
    thumbnails for short videos (not closer than half a second)."""
    if duration <= 0:
        return interval
    return max(0.5, min(float(interval), duration / 10.0))


def thumbnail_size(rung: Rung, width: int) -> tuple[int, int]:
    return _even(width), _even(width * rung.height / rung.width)


def ladder_command(source: str | Path, out: str | Path, rungs: Sequence[Rung], *, frame_rate: float | None,
                   has_audio: bool, options: Options, sprite_interval: float | None = None) -> list[str]:
    """The single ffmpeg command: decode once, ``split`` to one scaler per
    rung plus the sprite thumbnails, encode each rung (forced keyframes every
    ``keyframe_seconds``), mux every rung into HLS with a master playlist."""
    out = Path(out)
    fps = frame_rate if frame_rate and frame_rate > 0 else 30.0
    gop = max(1, int(math.ceil(fps * options.keyframe_seconds)))
    branches = len(rungs) + (1 if sprite_interval else 0)
    graph = [f"[0:v:0]split={branches}" + "".join(f"[s{i}]" for i in range(branches))]
    for i, rung in enumerate(rungs):
        graph.append(f"[s{i}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1,format=yuv420p[v{i}]")
    if sprite_interval:
        thumb_w, thumb_h = thumbnail_size(rungs[0], options.sprite_width)
        graph.append(f"[s{len(rungs)}]select='gte(t\\,selected_n*{sprite_interval:g})',"
                     f"scale={thumb_w}:{thumb_h},setsar=1[thumbs]")
    args = [options.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
            "-filter_complex", ";".join(graph), "-max_muxing_queue_size", "4096"]
    for i, rung in enumerate(rungs):
        args += ["-map", f"[v{i}]"]
    if has_audio:
        for _ in rungs:
            args += ["-map", "0:a:0"]
    args += ["-c:v", "libx264", "-preset", options.preset, "-sc_threshold", "0", "-g", str(gop * 2),
             "-force_key_frames", f"expr:gte(t,n_forced*{options.keyframe_seconds})"]
    if options.threads:
        args += ["-threads", str(options.threads)]
    for i, rung in enumerate(rungs):
        rate = rung.video_bitrate
        args += [f"-b:v:{i}", str(rate), f"-maxrate:v:{i}", str(int(rate * 1.07)),
                 f"-bufsize:v:{i}", str(rate * 2), f"-profile:v:{i}", _profile(rung)]
    if has_audio:
        args += ["-c:a", "aac", "-b:a", str(options.audio_bitrate), "-ac", "2"]
    stream_map = " ".join(f"v:{i},a:{i},name:{rung.quality}" if has_audio else f"v:{i},name:{rung.quality}"
                          for i, rung in enumerate(rungs))
    args += ["-f", "hls", "-hls_time", str(options.segment_seconds), "-hls_playlist_type", "vod",
             "-hls_list_size", "0", "-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
             "-hls_segment_filename", str(out / "hls" / "%v" / "seg_%05d.ts"),
             "-master_pl_name", "master.m3u8", "-var_stream_map", stream_map,
             str(out / "hls" / "%v" / "index.m3u8")]
    if sprite_interval:
        args += ["-map", "[thumbs]", "-fps_mode", "vfr", "-c:v", "mjpeg", "-q:v", "5", "-f", "image2",
                 "-start_number", "0", str(out / "thumbs" / "frames" / "t_%05d.jpg")]
    return args


def baseline_commands(source: str | Path, out: str | Path, rungs: Sequence[Rung], *,
                      preset: str | None = None, audio_bitrate: int = 128_000,
                      ffmpeg: str = "ffmpeg") -> list[list[str]]:
    """Spec 001's way, for comparison (the bench): one ffmpeg run per level,
    each decoding the source again, each an MP4 with +faststart.  With
    ``preset`` None, 001's own presets (medium; slow for FHD and above)."""
    commands = []
    for rung in rungs:
        chosen = preset or ("slow" if rung.height * rung.width >= 1920 * 1080 else "medium")
        commands.append([ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
                         "-vf", f"scale={rung.width}:{rung.height}", "-b:v", str(rung.video_bitrate),
                         "-preset", chosen, "-c:v", "libx264", "-c:a", "aac", "-b:a", str(audio_bitrate),
                         "-movflags", "+faststart", str(Path(out) / f"output_{rung.quality}.mp4")])
    return commands


# --- running ffmpeg with progress ---------------------------------------------------------


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-8:])


def run_ffmpeg(args: Sequence[str], *, duration: float | None = None,
               on_progress: Callable[[float], None] | None = None, timeout: float | None = None) -> None:
    """Run ``args`` (an ffmpeg command) reporting progress: ``on_progress``
    gets the percent done (0-100, from ``out_time_us`` of ``-progress``
    against ``duration``) about twice a second, and may raise
    :class:`Cancelled` to stop ffmpeg.  Raises :class:`TranscodeFailed`
    with the end of ffmpeg's messages when it fails or passes ``timeout``."""
    command = list(args)
    if on_progress is not None:
        command[1:1] = ["-progress", "pipe:1", "-nostats", "-stats_period", "0.5"]
    with tempfile.TemporaryDirectory(prefix="ffmpeg-log-") as logdir:
        log = Path(logdir) / "stderr"
        with open(log, "wb") as errors:
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=errors,
                                           stdout=subprocess.PIPE if on_progress else subprocess.DEVNULL)
            except OSError as exc:
                raise TranscodeFailed(f"cannot run {command[0]}: {exc}") from exc
            timer = None
            timed_out = threading.Event()
            if timeout:
                def expire() -> None:
                    timed_out.set()
                    process.kill()
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            try:
                if on_progress is not None:
                    assert process.stdout is not None
                    for raw in process.stdout:
                        key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                        if key == "out_time_us" and duration and value.strip().lstrip("-").isdigit():
                            done = max(0, int(value)) / 1e6
                            on_progress(min(100.0, 100.0 * done / duration))
                        elif key == "progress" and value == "end":
                            on_progress(100.0)
                process.wait()
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
        if timed_out.is_set():
            raise TranscodeFailed(f"ffmpeg took longer than {timeout:g} s and was stopped")
        if process.returncode != 0:
            said = _tail(log)
            how = f"signal {-process.returncode}" if process.returncode < 0 else f"status {process.returncode}"
            raise TranscodeFailed(f"ffmpeg failed ({how})" + (f": {said}" if said else ""))


# --- what comes out -------------------------------------------------------------------------


@dataclasses.dataclass
class RungOutput:
    quality: str
    width: int
    height: int
    video_bitrate: int
    bandwidth: int
    codecs: str
    playlist: str        # relative to the output directory
    segments: int
    size: int            # bytes of its segments


@dataclasses.dataclass
class SpriteOutput:
    vtt: str             # relative path
    sheets: list[str]
    interval: float
    count: int
    width: int
    height: int
    columns: int
    rows: int


@dataclasses.dataclass
class Result:
    master: str
    rungs: list[RungOutput]
    mp4: str | None
    poster: str | None
    sprite: SpriteOutput | None
    seconds: float       # wall time of the whole pipeline

    def files(self, out: str | Path) -> list[str]:
        """Every file to store, relative to ``out`` (the master last, so a
        reader never finds a master whose playlists are missing)."""
        out = Path(out)
        found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                       if p.is_file() and "frames" not in p.relative_to(out).parts)
        return [f for f in found if f != self.master] + [self.master]


_ATTRS = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attributes(line: str) -> dict[str, str]:
    """``#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="a,b"`` -> ``{"BANDWIDTH": "1", "CODECS": "a,b"}``."""
    _, _, rest = line.partition(":")
    return {key: value.strip('"') for key, value in _ATTRS.findall(rest)}


def parse_master(text: str) -> list[tuple[dict[str, str], str]]:
    """The variants of a master playlist: ``[(attributes, uri), ...]``."""
    variants, pending = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line)
        elif line and not line.startswith("#") and pending is not None:
            variants.append((pending, line))
            pending = None
    return variants


def parse_media(text: str) -> list[tuple[float, str]]:
    """The segments of a media playlist: ``[(seconds, uri), ...]``."""
    segments, pending = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:"):].split(",", 1)[0])
        elif line and not line.startswith("#") and pending is not None:
            segments.append((pending, line))
            pending = None
    return segments


def _vtt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def build_sprites(frames: Sequence[Path], out_dir: Path, *, interval: float, duration: float, columns: int,
                  rows: int) -> SpriteOutput | None:
    """Tile the thumbnails ``frames`` into sheets of ``columns`` x ``rows``
    and write the WebVTT track that points into them."""
    from PIL import Image

    if not frames:
        return None
    with Image.open(frames[0]) as first:
        width, height = first.size
    per_sheet = columns * rows
    sheets, cues = [], ["WEBVTT", ""]
    for start in range(0, len(frames), per_sheet):
        batch = frames[start:start + per_sheet]
        used_rows = math.ceil(len(batch) / columns)
        sheet = Image.new("RGB", (width * min(columns, len(batch)), height * used_rows))
        name = f"sprite_{start // per_sheet:03d}.jpg"
        for offset, frame in enumerate(batch):
            x, y = (offset % columns) * width, (offset // columns) * height
            with Image.open(frame) as thumb:
                sheet.paste(thumb.convert("RGB"), (x, y))
            index = start + offset
            begin, end = index * interval, min(duration, (index + 1) * interval)
            if end <= begin:
                end = begin + interval
            cues += [f"{_vtt_time(begin)} --> {_vtt_time(end)}", f"{name}#xywh={x},{y},{width},{height}", ""]
        sheet.save(out_dir / name, "JPEG", quality=80)
        sheets.append(f"thumbs/{name}")
    (out_dir / "thumbnails.vtt").write_text("\n".join(cues), encoding="utf-8")
    return SpriteOutput("thumbs/thumbnails.vtt", sheets, interval, len(frames), width, height, columns, rows)


def transcode(source: str | Path, out: str | Path, *, width: int, height: int, duration: float,
              rotation: int | float | None = 0, frame_rate: float | None = None, has_audio: bool = True,
              options: Options = Options(), on_progress: Callable[[float], None] | None = None,
              timeout: float | None = None) -> Result:
    """Run the whole pipeline on the local file ``source`` into the empty
    directory ``out`` (see the module's docstring for what it holds).

    ``on_progress`` gets 0-100: the ladder pass is 0-90 (ffmpeg's own
    progress), the MP4 remux, the poster and the sprites the rest."""
    started = time.monotonic()
    out = Path(out)
    rungs = plan_ladder(width, height, rotation, levels=options.levels)
    interval = sprite_interval_for(duration, options.sprite_interval) if options.sprite_interval else None
    (out / "thumbs" / "frames").mkdir(parents=True, exist_ok=True)
    report = on_progress or (lambda percent: None)

    run_ffmpeg(ladder_command(source, out, rungs, frame_rate=frame_rate, has_audio=has_audio, options=options,
                              sprite_interval=interval),
               duration=duration, on_progress=lambda p: report(p * 0.9), timeout=timeout)
    master_text = (out / "hls" / "master.m3u8").read_text(encoding="utf-8")
    variants = {uri.split("/", 1)[0]: attrs for attrs, uri in parse_master(master_text)}
    outputs = []
    for rung in rungs:
        playlist = out / "hls" / rung.quality / "index.m3u8"
        segments = parse_media(playlist.read_text(encoding="utf-8"))
        attrs = variants.get(rung.quality, {})
        outputs.append(RungOutput(
            rung.quality, rung.width, rung.height, rung.video_bitrate, int(attrs.get("BANDWIDTH") or 0),
            attrs.get("CODECS", ""), f"hls/{rung.quality}/index.m3u8", len(segments),
            sum((playlist.parent / uri).stat().st_size for _, uri in segments)))
    report(90.0)

    # the MP4 fallback: the lowest rung's segments remuxed, no second encode
    mp4 = out / "video.mp4"
    run_ffmpeg([options.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
                "-i", str(out / outputs[0].playlist), "-map", "0", "-c", "copy", "-movflags", "+faststart",
                str(mp4)], timeout=timeout)
    report(93.0)

    poster = out / "poster.jpg"
    top = rungs[-1] if rungs[-1].width * rungs[-1].height <= 1280 * 720 else \
        max((r for r in rungs if r.width * r.height <= 1280 * 720), key=lambda r: r.width * r.height,
            default=rungs[0])
    at = min(duration * 0.1, 5.0) if duration > 0 else 0.0
    try:
        run_ffmpeg([options.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-ss", f"{at:.3f}",
                    "-i", str(source), "-frames:v", "1", "-vf", f"scale={top.width}:{top.height},setsar=1",
                    "-q:v", "3", str(poster)], timeout=timeout)
    except TranscodeFailed:
        poster.unlink(missing_ok=True)
    if not poster.exists() or poster.stat().st_size == 0:  # seeking past a short video's end
        run_ffmpeg([options.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
                    "-frames:v", "1", "-vf", f"scale={top.width}:{top.height},setsar=1", "-q:v", "3",
                    str(poster)], timeout=timeout)
    report(95.0)

    frames = sorted((out / "thumbs" / "frames").glob("t_*.jpg"))
    sprite = None
    if interval:
        sprite = build_sprites(frames, out / "thumbs", interval=interval, duration=duration,
                               columns=options.sprite_columns, rows=options.sprite_rows)
    for frame in frames:
        frame.unlink()
    (out / "thumbs" / "frames").rmdir()
    report(97.0)
    return Result("hls/master.m3u8", outputs, "video.mp4", "poster.jpg", sprite, time.monotonic() - started)


# --- ffprobe helpers used to verify outputs -----------------------------------------------


def keyframe_times(path: str | Path, ffprobe: str = "ffprobe") -> list[float]:
    """Presentation times (s) of the video keyframes of ``path``, from its start."""
    found = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "packet=pts_time,flags", "-of", "json", str(path)],
                           capture_output=True, check=True, timeout=120)
    packets = json.loads(found.stdout or b"{}").get("packets", [])
    times = sorted(float(p["pts_time"]) for p in packets if "K" in p.get("flags", "") and "pts_time" in p)
    return [round(t - times[0], 3) for t in times] if times else []


def planned_qualities(width: int, height: int, rotation: int | float | None, levels: Iterable[Level]) -> list[str]:
    return [rung.quality for rung in plan_ladder(width, height, rotation, levels=tuple(levels))]
