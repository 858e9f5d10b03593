"""Builders of the processing, playback and watching tests: tiny clips made
with lavfi sources, videos processed for real (or installed from a
pipeline run made once per session), courses to watch them in, and a
client that follows a signed HLS master to its last segment."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import transaction

from learnsail.db import get_session, utcnow


def make_clip(path: Path, *, width: int = 320, height: int = 180, seconds: float = 2, audio: bool = True,
              rotate: int | None = None, rate: int = 25) -> Path:
    """A test clip: testsrc2 (and a sine tone), H.264/AAC in MP4."""
    path = Path(path)
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
               "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    target = path if rotate is None else path.with_name("plain-" + path.name)
    subprocess.run(command + [str(target)], check=True, timeout=120)
    if rotate is not None:  # a display matrix, as phones write it
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(target), "-c", "copy",
                        "-metadata:s:v:0", f"rotate={rotate}", str(path)], check=True, timeout=60)
        target.unlink()
    return path


def ffprobe_json(path: str | Path, *args: str) -> dict:
    import json

    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                           *args, str(path)], capture_output=True, check=True, timeout=120)
    return json.loads(done.stdout)


# --- transactions like a request's or a task's -----------------------------------------------


def in_transaction(app: Any, work: Callable[[Any], Any]) -> Any:
    """Run ``work(session)`` in a transaction of its own (a session joined
    to a transaction manager, as in a request): after-commit work -- the
    tasks it sends -- runs when it commits (eagerly in tests)."""
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        session = get_session(app.registry["learnsail.dbsession_factory"], tm)
        session.info["learnsail.registry"] = app.registry
        session.info["learnsail.tm"] = tm
        result = work(session)
    return result


# --- videos ------------------------------------------------------------------------------


def stored_video(app: Any, dbsession: Any, owner: Any, clip: Path, *, title: str = "Clip",
                 status: str = "processing") -> Any:
    """A Video whose original (``clip``) is in storage, as the upload side
    leaves it before the hand-off."""
    from learnsail_video.models import Video

    storage = app.registry["learnsail.storage"]
    key = f"video-test/{uuid.uuid4().hex}/{clip.name}"
    with open(clip, "rb") as handle:
        storage.put(key, handle, content_type="video/mp4")
    video = Video(owner_id=owner.id, title=title, original_filename=clip.name, size=clip.stat().st_size,
                  source_key=key, status=status, progress=0)
    dbsession.add(video)
    dbsession.commit()
    return video


def process(app: Any, video_id: int) -> None:
    """Hand ``video_id`` to processing as the upload side does; the task
    runs (eagerly) once the hand-off commits."""
    from learnsail_video import processing
    from learnsail_video.models import Video

    in_transaction(app, lambda session: processing.start(session, session.get(Video, video_id)))


def processed_video(app: Any, dbsession: Any, owner: Any, clip: Path, **kwargs: Any) -> Any:
    video = stored_video(app, dbsession, owner, clip, **kwargs)
    process(app, video.id)
    dbsession.expire_all()
    return dbsession.get(type(video), video.id)


class Ladder:
    """One real pipeline run, made once and installed as many times as
    tests need (each install gets its own rows and storage prefix)."""

    def __init__(self, clip: Path, out: Path, *, width: int, height: int, duration: float) -> None:
        from learnsail_video import transcode

        self.clip, self.out, self.duration = clip, out, duration
        self.width, self.height = width, height
        out.mkdir(parents=True, exist_ok=True)
        self.result = transcode.transcode(clip, out, width=width, height=height, duration=duration,
                                          frame_rate=25.0, has_audio=True)

    def install(self, app: Any, dbsession: Any, owner: Any, *, title: str = "Lecture") -> Any:
        from learnsail_video.media_models import DONE, Rendition, TranscodeJob
        from learnsail_video.models import COMPLETED, Video

        storage = app.registry["learnsail.storage"]
        video = Video(owner_id=owner.id, title=title, original_filename=self.clip.name,
                      size=self.clip.stat().st_size, status=COMPLETED, progress=100,
                      duration=int(round(self.duration)), duration_ms=int(self.duration * 1000), width=self.width,
                      height=self.height, video_codec="h264", audio_codec="aac", format="mov,mp4,m4a,3gp,3g2,mj2")
        dbsession.add(video)
        dbsession.flush()
        prefix = f"video-media/{video.id}/{uuid.uuid4().hex[:16]}/"
        video.source_key = f"video-test/{uuid.uuid4().hex}/{self.clip.name}"
        with open(self.clip, "rb") as handle:
            storage.put(video.source_key, handle)
        for relative in self.result.files(self.out):
            with open(self.out / relative, "rb") as handle:
                storage.put(prefix + relative, handle)
        job = TranscodeJob(video_id=video.id, status=DONE, progress=100, attempts=1, output_prefix=prefix,
                           qualities=[r.quality for r in self.result.rungs], processing_time=1.0,
                           started_at=utcnow(), finished_at=utcnow())
        dbsession.add(job)
        dbsession.flush()
        for rung in self.result.rungs:
            dbsession.add(Rendition(video_id=video.id, job_id=job.id, quality=rung.quality, width=rung.width,
                                    height=rung.height, video_bitrate=rung.video_bitrate, bandwidth=rung.bandwidth,
                                    codecs=rung.codecs, playlist_key=prefix + rung.playlist,
                                    segments=rung.segments, size=rung.size))
        video.hls_prefix = prefix
        video.master_key = prefix + self.result.master
        video.mp4_key = prefix + self.result.mp4
        video.thumbnail_key = prefix + self.result.poster
        video.sprite_key = prefix + self.result.sprite.vtt
        video.qualities = [r.quality for r in self.result.rungs]
        video.processed_at = utcnow()
        dbsession.commit()
        return video


# --- courses -------------------------------------------------------------------------------


def course_with_lesson(dbsession: Any, teacher: Any, video: Any = None, *, free: bool = False,
                       member_only: bool = False, lesson_free: bool = False, lesson_trial: bool = False,
                       status: str = "published", lessons: int = 1) -> tuple[Any, list[Any]]:
    """A published course of ``teacher`` (paid unless ``free``) with one
    chapter of ``lessons`` lessons, the first showing ``video``."""
    from learnsail_courses.models import Chapter, Course, Lesson

    course = Course(title="Course", teacher_id=teacher.id, status=status, is_free=free,
                    price=Decimal("0.00") if free else Decimal("99.00"), is_member_only=member_only,
                    published_at=utcnow() if status == "published" else None)
    dbsession.add(course)
    dbsession.flush()
    chapter = Chapter(course_id=course.id, title="Chapter 1", sort_order=1)
    dbsession.add(chapter)
    dbsession.flush()
    made = []
    for n in range(lessons):
        lesson = Lesson(chapter_id=chapter.id, course_id=course.id, title=f"Lesson {n + 1}", sort_order=n + 1,
                        is_free=lesson_free and n == 0, is_trial=lesson_trial and n == 0)
        if n == 0 and video is not None:
            lesson.video_id, lesson.duration = video.id, int(video.duration or 0)
        dbsession.add(lesson)
        made.append(lesson)
    dbsession.commit()
    return course, made


def enrol(dbsession: Any, user: Any, course: Any, *, kind: str = "paid", valid_from: dt.datetime | None = None,
          valid_until: dt.datetime | None = None, status: str = "active") -> Any:
    from learnsail_courses.models import Enrolment

    enrolment = Enrolment(user_id=user.id, course_id=course.id, kind=kind, status=status, valid_from=valid_from,
                          valid_until=valid_until)
    dbsession.add(enrolment)
    dbsession.commit()
    return enrolment


# --- following a signed master ------------------------------------------------------------------


def _get(testapp: Any, url: str, status: int = 200) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.hostname in (None, "localhost"):
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return testapp.get(path, status=status).body
    with urllib.request.urlopen(url, timeout=30) as answer:  # a presigned URL of the S3 server
        assert answer.status == status
        return answer.read()


def fetch_hls(testapp: Any, master_url: str, dest: Path) -> dict:
    """Fetch the master behind ``master_url``, every media playlist it
    names and every segment they name, each through the URL the server
    signed; write them under ``dest`` with their URIs made local paths.
    Returns ``{"master": path, "media": {quality: text}, "segments": n}``."""
    dest.mkdir(parents=True, exist_ok=True)
    master = _get(testapp, master_url).decode("utf-8")
    local_master, media, count = [], {}, 0
    for line in master.splitlines():
        if line and not line.startswith("#"):
            quality = line.split("/", 1)[0]
            text = _get(testapp, urllib.parse.urljoin(master_url, line)).decode("utf-8")
            media[quality] = text
            (dest / quality).mkdir(exist_ok=True)
            local = []
            for entry in text.splitlines():
                if entry and not entry.startswith("#"):
                    name = f"seg{count:05d}.ts"
                    (dest / quality / name).write_bytes(_get(testapp, entry))
                    entry, count = name, count + 1
                local.append(entry)
            (dest / quality / "index.m3u8").write_text("\n".join(local) + "\n")
            line = f"{quality}/index.m3u8"
        local_master.append(line)
    (dest / "master.m3u8").write_text("\n".join(local_master) + "\n")
    return {"master": dest / "master.m3u8", "master_text": master, "media": media, "segments": count}


def segment_urls(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def playlist_seconds(text: str) -> float:
    return sum(float(m) for m in re.findall(r"#EXTINF:([0-9.]+)", text))


def copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)
