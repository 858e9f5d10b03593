"""ffprobe's reading of a file (probe.py) and the resumable MD5 (md5.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from learnsail_video import md5, probe
from video_test_helpers import clip_paths  # noqa: F401


def test_probe_reads_what_the_clip_holds(clip_paths):
    result = probe.probe(str(clip_paths["small"]))
    assert result.has_video and result.has_audio
    assert (result.width, result.height, result.video_codec, result.audio_codec) == (320, 240, "h264", "aac")
    assert result.duration == 2 and 1900 <= result.duration_ms <= 2100
    assert float(result.frame_rate) == 25.0 and result.bitrate > 0
    assert result.format_name.startswith("mov,mp4") and result.rotation == 0


def test_rotation_comes_from_the_display_matrix_or_the_rotate_tag(ffmpeg, clip_paths, tmp_path):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg[0], "-v", "error", "-y", "-i", str(clip_paths["small"]), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True)
    result = probe.probe(str(rotated))
    (side,) = [d for s in result.raw["streams"] for d in s.get("side_data_list", []) if "rotation" in d]
    # ffprobe tells the matrix's counter-clockwise angle; rotation is the clockwise turn that shows it upright
    assert result.rotation == round(-side["rotation"]) % 360 and result.rotation in (90, 270)
    assert result.display_size == (240, 320)
    tagged = probe.interpret({"format": {"format_name": "mov"}, "streams": [
        {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080, "tags": {"rotate": "90"}}]})
    assert tagged.rotation == 90 and tagged.display_size == (1080, 1920)
    matrix = probe.interpret({"format": {"format_name": "mov"}, "streams": [
        {"codec_type": "video", "width": 4, "height": 2, "side_data_list": [
            {"side_data_type": "Display Matrix", "rotation": -90}]}]})
    assert matrix.rotation == 90


def test_what_is_not_a_video_says_what_it_is(clip_paths, tmp_path):
    with pytest.raises(probe.NotAVideo) as sound:
        probe.probe(str(clip_paths["sound"]))
    assert sound.value.has_audio and "sound only" in sound.value.reason
    with pytest.raises(probe.NotAVideo) as text:
        probe.probe(str(clip_paths["text"]))
    assert text.value.detected_type == "unknown" and str(clip_paths["text"]) not in text.value.reason
    png = tmp_path / "still.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                  "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"))
    with pytest.raises(probe.NotAVideo) as still:
        probe.probe(str(png))
    assert "still image" in still.value.reason
    cover = probe.interpret({"format": {"format_name": "mp3"}, "streams": [
        {"codec_type": "audio", "codec_name": "mp3"},
        {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}]})
    assert not cover.has_video  # an audio file's cover art is not a video


def test_a_missing_or_slow_ffprobe_is_unavailable_not_the_files_fault(clip_paths, tmp_path):
    with pytest.raises(probe.ProbeUnavailable):
        probe.probe(str(clip_paths["small"]), ffprobe=str(tmp_path / "no-ffprobe"))
    slow = tmp_path / "slow-ffprobe"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(probe.ProbeUnavailable, match="more than"):
        probe.probe(str(clip_paths["small"]), ffprobe=str(slow), timeout=0.3)


def test_the_md5_continues_from_a_saved_state():
    data = os.urandom(3 * 1024 * 1024 + 17)
    first = md5.ResumableMD5()
    first.update(data[:1_000_000])
    state = first.state()
    if not md5.available():
        assert state is None
        pytest.skip("no libcrypto: states are not saved, completion reads the file")
    second = md5.ResumableMD5(state)
    second.update(bytearray(data[1_000_000:2_000_000]))
    second.update(memoryview(data)[2_000_000:])
    assert second.hexdigest() == hashlib.md5(data).hexdigest()
    assert second.hexdigest() == hashlib.md5(data).hexdigest()  # reading the digest keeps the state
    assert first.hexdigest() == hashlib.md5(data[:1_000_000]).hexdigest()


def test_a_state_from_elsewhere_is_not_continued():
    state = md5.ResumableMD5().state()
    if state is None:
        pytest.skip("no libcrypto")
    with pytest.raises(ValueError):
        md5.ResumableMD5(b"md5ctx1|another build" + state[20:])
    assert md5.resume(state[:-1]) is None
