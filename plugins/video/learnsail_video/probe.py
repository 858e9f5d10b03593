"""ffprobe: what a media file holds, read from its content.

    from learnsail_video.probe import probe, NotAVideo

    info = probe("/path/to/clip.mp4")          # or a (signed) http(s) URL
    info.duration, info.width, info.height, info.video_codec, info.rotation ...

Runs ``ffprobe -v error -print_format json -show_format -show_streams``
with a timeout.  A file ffprobe cannot read, or one without a video stream
(audio only, a still image, an audio file's cover art) raises
:class:`NotAVideo` with what was detected; ffprobe missing or too slow
raises :class:`ProbeUnavailable` (worth retrying later, not the file's
fault).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

#: ffprobe's names of formats that hold still images, not videos
IMAGE_FORMATS = frozenset({"image2", "image2pipe", "gif", "apng", "webp", "ico", "tiff", "bmp"})


class ProbeError(Exception):
    """ffprobe could not say what the file is."""


class NotAVideo(ProbeError):
    """The file has no playable video stream.  ``detected_type`` says what it
    is instead, as ffprobe names it (``"mp3"``, ``"image2"``, ``"png_pipe"``),
    or ``"unknown"`` when ffprobe cannot read it at all."""

    def __init__(self, detected_type: str, reason: str, *, has_audio: bool = False) -> None:
        super().__init__(reason)
        self.detected_type = detected_type
        self.reason = reason
        #: it holds sound (an audio file, or a video container with sound only)
        self.has_audio = has_audio


class ProbeUnavailable(ProbeError):
    """ffprobe is missing, or ran past its timeout: try again later."""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What ffprobe found.  ``rotation`` is the clockwise turn, in degrees
    (0, 90, 180 or 270), that shows the picture upright; ``width`` and
    ``height`` are as stored (before that turn)."""

    format_name: str
    format_long_name: str
    duration: int | None  #: seconds, rounded
    duration_ms: int | None
    width: int | None
    height: int | None
    video_codec: str | None
    audio_codec: str | None
    bitrate: int | None  #: bits per second
    frame_rate: Decimal | None  #: frames per second, 3 decimals
    rotation: int
    has_video: bool
    has_audio: bool
    raw: dict = dataclasses.field(repr=False, compare=False, default_factory=dict)

    @property
    def display_size(self) -> tuple[int | None, int | None]:
        """``(width, height)`` as shown, after the rotation."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def run_ffprobe(target: str, *, ffprobe: str = "ffprobe", timeout: float = 60) -> dict:
    """ffprobe's JSON about ``target`` (a path or a URL).  Raises
    :class:`NotAVideo` when ffprobe cannot read it, :class:`ProbeUnavailable`
    when ffprobe is missing or too slow."""
    command = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", target]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ProbeUnavailable(f"{ffprobe} is not installed (install the Debian package ffmpeg, or set "
                               "learnsail.video.ffprobe)") from None
    except subprocess.TimeoutExpired:
        raise ProbeUnavailable(f"ffprobe took more than {timeout:g} s") from None
    message = done.stderr.decode("utf-8", "replace").strip().splitlines()
    try:
        data = json.loads(done.stdout or b"{}")
    except ValueError:
        data = {}
    if done.returncode != 0 or not data.get("format"):
        reason = message[-1] if message else "ffprobe cannot read it"
        if target.startswith(("http://", "https://")) and any(
                word in reason for word in ("Connection refused", "Server returned 5", "timed out")):
            raise ProbeUnavailable(f"ffprobe could not fetch the file: {reason}")
        raise NotAVideo("unknown", f"Not a media file ffprobe can read ({_strip_target(reason, target)}).")
    return data


def _strip_target(reason: str, target: str) -> str:
    # ffprobe prefixes errors with the input name: a signed URL or a server path is not for clients
    return reason.replace(f"{target}: ", "").replace(target, "the file")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _rate(value: Any) -> Decimal | None:
    try:
        fraction = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    if fraction <= 0:
        return None
    try:
        return Decimal(fraction.numerator / fraction.denominator).quantize(Decimal("0.001"))
    except InvalidOperation:
        return None


def _rotation(stream: dict) -> int:
    """Clockwise degrees to show the picture upright: the display matrix
    (ffprobe gives its counter-clockwise rotation) or the old ``rotate`` tag."""
    for side in stream.get("side_data_list") or ():
        if "rotation" in side:
            try:
                counter_clockwise = float(side["rotation"])
            except (TypeError, ValueError):
                continue
            return int(round(-counter_clockwise / 90.0)) * 90 % 360
    tag = (stream.get("tags") or {}).get("rotate")
    if tag is not None:
        try:
            return int(round(float(tag) / 90.0)) * 90 % 360
        except (TypeError, ValueError):
            pass
    return 0


def interpret(data: dict) -> ProbeResult:
    """A :class:`ProbeResult` from ffprobe's JSON (whatever it holds)."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    video = videos[0] if videos else None
    audio = audios[0] if audios else None
    format_name = str(fmt.get("format_name") or "unknown")
    seconds = _number(fmt.get("duration"))
    if seconds is None and video is not None:
        seconds = _number(video.get("duration"))
    bitrate = _number(fmt.get("bit_rate"))
    if bitrate is None and video is not None:
        bitrate = _number(video.get("bit_rate"))
    is_image = format_name in IMAGE_FORMATS or format_name.endswith("_pipe")
    frame_rate = None
    if video is not None:
        frame_rate = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    return ProbeResult(
        format_name=format_name[:50],
        format_long_name=str(fmt.get("format_long_name") or ""),
        duration=int(round(seconds)) if seconds is not None else None,
        duration_ms=int(round(seconds * 1000)) if seconds is not None else None,
        width=int(video["width"]) if video is not None and video.get("width") else None,
        height=int(video["height"]) if video is not None and video.get("height") else None,
        video_codec=str(video.get("codec_name"))[:50] if video is not None and video.get("codec_name") else None,
        audio_codec=str(audio.get("codec_name"))[:50] if audio is not None and audio.get("codec_name") else None,
        bitrate=int(bitrate) if bitrate is not None else None,
        frame_rate=frame_rate,
        rotation=_rotation(video) if video is not None else 0,
        has_video=video is not None and not is_image,
        has_audio=audio is not None,
        raw=data,
    )


def probe(path_or_url: str, *, ffprobe: str = "ffprobe", timeout: float = 60) -> ProbeResult:
    """Probe a video; raises :class:`NotAVideo` (with ``detected_type``)
    when it holds no video stream, :class:`ProbeUnavailable` when ffprobe
    cannot run."""
    result = interpret(run_ffprobe(path_or_url, ffprobe=ffprobe, timeout=timeout))
    if not result.has_video:
        if result.format_name in IMAGE_FORMATS or result.format_name.endswith("_pipe"):
            reason = f"It is a still image ({result.format_name}), not a video."
        elif result.has_audio:
            reason = f"It holds sound only ({result.format_name}, {result.audio_codec}), no video stream."
        else:
            reason = f"It holds no video stream ({result.format_name})."
        raise NotAVideo(result.format_name, reason, has_audio=result.has_audio)
    return result
