"""The ffmpeg pipeline on real clips: the ladder never upscales, one pass
writes every rung with keyframes every 2 s, the master playlist is
complete, the MP4 fallback starts fast, the poster and sprites exist."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from learnsail_video import transcode
from learnsail_video.transcode import Level, plan_ladder
from video_media_helpers import ffprobe_json, make_clip


def sizes(rungs):
    return [(r.quality, r.width, r.height) for r in rungs]


# --- the plan ---------------------------------------------------------------------------------

def test_a_360p_source_gets_sd_only_and_720p_sd_and_hd():
    assert sizes(plan_ladder(640, 360)) == [("sd", 640, 360)]
    assert sizes(plan_ladder(1280, 720)) == [("sd", 640, 360), ("hd", 1280, 720)]
    assert sizes(plan_ladder(1920, 1080)) == [("sd", 640, 360), ("hd", 1280, 720), ("fhd", 1920, 1080)]
    assert [r.quality for r in plan_ladder(3840, 2160)] == ["sd", "hd", "fhd", "4k"]
    assert [r.video_bitrate for r in plan_ladder(3840, 2160)] == [800_000, 2_500_000, 5_000_000, 15_000_000]


def test_the_ladder_never_upscales_and_keeps_the_aspect_ratio_with_even_sides():
    assert sizes(plan_ladder(320, 180)) == [("sd", 320, 180)]          # smaller than SD: its own size
    assert sizes(plan_ladder(640, 480)) == [("sd", 480, 360), ("hd", 640, 480)]  # 4:3: SD box, then its own size
    assert sizes(plan_ladder(2560, 1080))[:3] == [("sd", 640, 270), ("hd", 1280, 540), ("fhd", 1920, 810)]
    for rung in plan_ladder(1000, 562):
        assert rung.width % 2 == 0 and rung.height % 2 == 0
        assert rung.width <= 1000 and rung.height <= 562


def test_a_source_well_between_two_levels_gets_the_upper_one_at_its_own_size():
    rungs = plan_ladder(960, 540)
    assert sizes(rungs) == [("sd", 640, 360), ("hd", 960, 540)]
    assert rungs[1].video_bitrate < 2_500_000  # scaled by the pixel count
    assert sizes(plan_ladder(700, 394)) == [("sd", 640, 360)]  # barely larger: no extra rung


def test_rotation_turns_the_ladder():
    assert sizes(plan_ladder(1280, 720, 90)) == [("sd", 360, 640), ("hd", 720, 1280)]
    assert sizes(plan_ladder(1280, 720, 180)) == [("sd", 640, 360), ("hd", 1280, 720)]


def test_the_levels_offered_limit_the_ladder():
    only_sd = tuple(level for level in transcode.LEVELS if level.name == "sd")
    assert sizes(plan_ladder(1920, 1080, levels=only_sd)) == [("sd", 640, 360)]
    with pytest.raises(ValueError):
        plan_ladder(0, 0)
    assert Level("x", 1, 1, 1).name == "x"


def test_one_command_decodes_once_and_maps_every_rung():
    rungs = plan_ladder(1280, 720)
    args = transcode.ladder_command("in.mp4", Path("/out"), rungs, frame_rate=25, has_audio=True,
                                    options=transcode.Options(), sprite_interval=5)
    assert args.count("-i") == 1
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]split=3") and "scale=640:360" in graph and "scale=1280:720" in graph
    assert args[args.index("-var_stream_map") + 1] == "v:0,a:0,name:sd v:1,a:1,name:hd"
    assert args[args.index("-master_pl_name") + 1] == "master.m3u8"
    assert args[args.index("-force_key_frames") + 1] == "expr:gte(t,n_forced*2)"
    assert args[args.index("-sc_threshold") + 1] == "0"
    silent = transcode.ladder_command("in.mp4", Path("/out"), rungs, frame_rate=25, has_audio=False,
                                      options=transcode.Options(), sprite_interval=None)
    assert silent[silent.index("-var_stream_map") + 1] == "v:0,name:sd v:1,name:hd"
    assert "0:a:0" not in silent


# --- real runs ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips(tmp_path_factory, ffmpeg):
    base = tmp_path_factory.mktemp("clips")
    return {
        "720p": make_clip(base / "720p.mp4", width=1280, height=720, seconds=4),
        "360p": make_clip(base / "360p.mp4", width=640, height=360, seconds=2),
        "rotated": make_clip(base / "rotated.mp4", width=320, height=180, seconds=2, rotate=90),
        "silent": make_clip(base / "silent.mp4", width=320, height=180, seconds=2, audio=False),
    }


def _moov_before_mdat(path: Path) -> bool:
    data = path.read_bytes()
    offset, order = 0, []
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        order.append(kind)
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        if size < 8:
            break
        offset += size
    return order.index(b"moov") < order.index(b"mdat")


def test_a_720p_source_becomes_sd_and_hd_in_one_pass(clips, tmp_path):
    seen = []
    result = transcode.transcode(clips["720p"], tmp_path, width=1280, height=720, duration=4.0, frame_rate=25,
                                 has_audio=True, on_progress=seen.append)
    assert [(r.quality, r.width, r.height) for r in result.rungs] == [("sd", 640, 360), ("hd", 1280, 720)]

    master = (tmp_path / "hls" / "master.m3u8").read_text()
    variants = transcode.parse_master(master)
    assert [uri for _, uri in variants] == ["sd/index.m3u8", "hd/index.m3u8"]
    for (attrs, _), (width, height) in zip(variants, [(640, 360), (1280, 720)]):
        assert attrs["RESOLUTION"] == f"{width}x{height}"
        assert int(attrs["BANDWIDTH"]) > 0
        assert attrs["CODECS"].startswith("avc1.") and "mp4a.40.2" in attrs["CODECS"]

    for quality, height in (("sd", 360), ("hd", 720)):
        playlist = tmp_path / "hls" / quality / "index.m3u8"
        text = playlist.read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        assert transcode.keyframe_times(playlist) == [0.0, 2.0]  # every 2 s, and only there
        stream = ffprobe_json(playlist)["streams"][0]
        assert stream["height"] == height and stream["codec_name"] == "h264"

    mp4 = tmp_path / "video.mp4"
    probed = ffprobe_json(mp4)
    assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}
    assert [s["height"] for s in probed["streams"] if s["codec_type"] == "video"] == [360]  # the lowest rung
    assert abs(float(probed["format"]["duration"]) - 4.0) < 0.3
    assert _moov_before_mdat(mp4)  # +faststart

    assert ffprobe_json(tmp_path / "poster.jpg")["streams"][0]["width"] == 1280
    assert result.sprite is not None and result.sprite.count >= 4
    vtt = (tmp_path / "thumbs" / "thumbnails.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "sprite_000.jpg#xywh=0,0,160,90" in vtt
    assert (tmp_path / "thumbs" / "sprite_000.jpg").exists()
    assert not (tmp_path / "thumbs" / "frames").exists()

    assert seen[0] < 50 and seen == sorted(seen) and seen[-1] >= 97
    assert result.files(tmp_path)[-1] == "hls/master.m3u8"  # stored last


def test_a_360p_source_makes_sd_only(clips, tmp_path):
    result = transcode.transcode(clips["360p"], tmp_path, width=640, height=360, duration=2.0, frame_rate=25)
    assert [r.quality for r in result.rungs] == ["sd"]
    assert [uri for _, uri in transcode.parse_master((tmp_path / "hls/master.m3u8").read_text())] == ["sd/index.m3u8"]
    assert not (tmp_path / "hls" / "hd").exists()


def test_a_rotated_source_is_turned_upright(clips, tmp_path):
    found = ffprobe_json(clips["rotated"])["streams"][0]
    assert (found["width"], found["height"]) == (320, 180)  # stored sideways
    result = transcode.transcode(clips["rotated"], tmp_path, width=320, height=180, rotation=270, duration=2.0)
    assert [(r.width, r.height) for r in result.rungs] == [(180, 320)]
    stream = ffprobe_json(tmp_path / "hls/sd/index.m3u8")["streams"][0]
    assert (stream["width"], stream["height"]) == (180, 320)


def test_a_source_without_sound_has_video_only_rungs(clips, tmp_path):
    result = transcode.transcode(clips["silent"], tmp_path, width=320, height=180, duration=2.0, has_audio=False)
    assert "mp4a" not in result.rungs[0].codecs
    assert [s["codec_type"] for s in ffprobe_json(tmp_path / "video.mp4")["streams"]] == ["video"]


def test_a_failing_ffmpeg_says_why(tmp_path, ffmpeg):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(transcode.TranscodeFailed, match="ffmpeg failed"):
        transcode.transcode(broken, tmp_path / "out", width=320, height=180, duration=2.0)
