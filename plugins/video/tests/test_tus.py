"""The tus 1.0 endpoint, driven by the tuspy client over real HTTP, on local
storage and on an S3 server."""

from __future__ import annotations

import base64
import hashlib

import pytest
import requests
import sqlalchemy as sa
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from video_test_helpers import (KIB, TUS, _live_servers, clip_paths, clips, handed_off, keys_under,  # noqa: F401
                                live_server, status_of, stored_bytes)


@pytest.fixture(scope="session", params=["local", "s3"])
def learnsail_extra_settings(request, learnsail_extra_settings):
    if request.param == "local":
        return learnsail_extra_settings
    s3 = request.getfixturevalue("s3_server")
    return {**learnsail_extra_settings,
            "learnsail.storage_url": f"s3://{s3.access_key}:{s3.secret_key}@{s3.endpoint}/learnsail-video"
                                     f"?secure=false&region={s3.region}"}


@pytest.fixture
def storage(app):
    return app.registry["learnsail.storage"]


@pytest.fixture
def teacher(make_user, auth_headers):
    return auth_headers(make_user("teacher"))


def tus(headers):
    return {**headers, "Tus-Resumable": "1.0.0"}


def video_of(dbsession, url):
    from learnsail_video.models import UploadTask, Video

    dbsession.expire_all()
    task = dbsession.scalar(sa.select(UploadTask).where(UploadTask.token == url.rsplit("/", 1)[1]))
    return task, dbsession.get(Video, task.video_id)


def test_tuspy_uploads_in_chunks_and_resumes_after_an_interruption(live_server, teacher, clip_paths, clips,
                                                                   storage, dbsession, testapp, handed_off):
    data = clips["medium"]
    client = tus_client.TusClient(live_server.url + TUS, headers=teacher)
    first = client.uploader(file_path=str(clip_paths["medium"]), chunk_size=256 * KIB, upload_checksum=True,
                            metadata={"filename": "tus-clip.mp4", "title": "Sent with tus",
                                      "file_md5": hashlib.md5(data).hexdigest()})
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 512 * KIB
    # the client goes away; a new one picks the upload up where the server has it
    again = client.uploader(file_path=str(clip_paths["medium"]), url=first.url, chunk_size=256 * KIB,
                            upload_checksum=True)
    assert again.offset == 512 * KIB
    again.upload()
    assert again.offset == len(data)
    task, video = video_of(dbsession, first.url)
    assert task.status == "uploaded" and task.protocol == "tus"
    assert (video.title, video.original_filename, video.status) == ("Sent with tus", "tus-clip.mp4", "processing")
    assert stored_bytes(storage, video.source_key) == data and handed_off == [video.id]
    assert (video.width, video.height) == (640, 360)
    assert keys_under(storage, task.prefix) == []
    # the upload is an upload task like the others
    status = status_of(testapp, teacher, task.token).json
    assert status["protocol"] == "tus" and status["status"] == "processing" and status["upload_progress"] == 100


class WrongChecksumUploader(Uploader):
    """Sends an Upload-Checksum that does not match the data."""

    CHECKSUM_ALGORITHM_PAIR = ("sha1", lambda data: hashlib.sha1(data + b"!"))


def test_a_checksum_mismatch_is_460_and_the_data_is_discarded(live_server, teacher, clip_paths, clips, storage,
                                                               dbsession):
    data = clips["medium"]
    client = tus_client.TusClient(live_server.url + TUS, headers=teacher)
    good = client.uploader(file_path=str(clip_paths["medium"]), chunk_size=256 * KIB, upload_checksum=True,
                           metadata={"filename": "clip.mp4"})
    good.upload_chunk()
    bad = WrongChecksumUploader(file_path=str(clip_paths["medium"]), url=good.url, client=client,
                                chunk_size=256 * KIB, upload_checksum=True)
    with pytest.raises(TusCommunicationError) as failure:
        bad.upload_chunk()
    assert failure.value.status_code == 460
    assert b"CHECKSUM_MISMATCH" in failure.value.response_content
    head = requests.head(good.url, headers=tus(teacher))
    assert head.headers["Upload-Offset"] == str(256 * KIB) and head.headers["Tus-Resumable"] == "1.0.0"
    task, _ = video_of(dbsession, good.url)
    if storage.kind == "local":
        assert storage.path_of(task.prefix + "data").stat().st_size == 256 * KIB
    else:
        assert len(keys_under(storage, task.prefix)) == 1
    # the same data with the right checksum goes through
    good.offset = 256 * KIB
    good.upload()
    task, video = video_of(dbsession, good.url)
    assert task.status == "uploaded" and stored_bytes(storage, video.source_key) == data


def test_an_md5_checksum_is_understood_too(live_server, teacher, clips):
    data = clips["small"]
    created = requests.post(live_server.url + TUS, headers={**tus(teacher), "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    digest = base64.b64encode(hashlib.md5(data).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    headers = {**tus(teacher), "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert requests.patch(url, data=data, headers={**headers, "Upload-Checksum": f"md5 {wrong}"}).status_code == 460
    done = requests.patch(url, data=data, headers={**headers, "Upload-Checksum": f"md5 {digest}"})
    assert done.status_code == 204, done.text
    assert done.headers["Upload-Offset"] == str(len(data))
    unknown = requests.patch(url, data=b"", headers={**headers, "Upload-Checksum": f"crc32 {digest}"})
    assert unknown.status_code == 400 and unknown.headers["Tus-Resumable"] == "1.0.0"


def test_a_patch_at_the_wrong_offset_is_409(live_server, teacher, clips):
    data = clips["small"]
    created = requests.post(live_server.url + TUS, headers={**tus(teacher), "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    headers = {**tus(teacher), "Content-Type": "application/offset+octet-stream"}
    assert requests.patch(url, data=data[:1000], headers={**headers, "Upload-Offset": "0"}).status_code == 204
    response = requests.patch(url, data=data[500:2000], headers={**headers, "Upload-Offset": "500"})
    assert response.status_code == 409 and response.headers["Tus-Resumable"] == "1.0.0"
    assert response.json()["error"]["details"]["offset"] == 1000
    assert requests.head(url, headers=tus(teacher)).headers["Upload-Offset"] == "1000"


def test_the_server_announces_what_it_speaks(live_server, app):
    response = requests.options(live_server.url + TUS)
    assert response.status_code == 204
    headers = response.headers
    assert headers["Tus-Resumable"] == "1.0.0" and headers["Tus-Version"] == "1.0.0"
    assert set(headers["Tus-Extension"].split(",")) == {"creation", "checksum", "termination", "expiration"}
    assert headers["Tus-Checksum-Algorithm"] == "md5,sha1"
    assert int(headers["Tus-Max-Size"]) == app.registry.settings["learnsail.video.max_upload_size"]


def test_head_tells_the_offset_and_length_and_is_not_cached(live_server, teacher):
    metadata = "filename " + base64.b64encode("课程.mp4".encode()).decode() + ",title " + \
        base64.b64encode(b"Lesson one").decode()
    created = requests.post(live_server.url + TUS, headers={**tus(teacher), "Upload-Length": "12345",
                                                            "Upload-Metadata": metadata})
    assert created.status_code == 201 and created.headers["Upload-Expires"].endswith("GMT")
    head = requests.head(created.headers["Location"], headers=tus(teacher))
    assert head.status_code == 200
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("0", "12345")
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Tus-Resumable"] == "1.0.0"
    assert "filename" in head.headers["Upload-Metadata"]


def test_termination_removes_the_upload(live_server, teacher, clips, storage, dbsession):
    data = clips["small"]
    created = requests.post(live_server.url + TUS, headers={**tus(teacher), "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    requests.patch(url, data=data[:5000], headers={**tus(teacher), "Upload-Offset": "0",
                                                   "Content-Type": "application/offset+octet-stream"})
    task, _ = video_of(dbsession, url)
    assert keys_under(storage, task.prefix)
    deleted = requests.delete(url, headers=tus(teacher))
    assert deleted.status_code == 204 and deleted.headers["Tus-Resumable"] == "1.0.0"
    assert requests.head(url, headers=tus(teacher)).status_code == 404
    assert keys_under(storage, task.prefix) == []


def test_protocol_errors(live_server, teacher, make_user, auth_headers, clips):
    base = live_server.url + TUS
    # no Tus-Resumable: 412 naming the version spoken
    missing = requests.post(base, headers={**teacher, "Upload-Length": "10"})
    assert missing.status_code == 412 and missing.headers["Tus-Version"] == "1.0.0"
    # too large for the server
    big = requests.post(base, headers={**tus(teacher), "Upload-Length": str(10 ** 13)})
    assert big.status_code == 413 and big.headers["Tus-Resumable"] == "1.0.0"
    assert requests.post(base, headers={**tus(teacher), "Upload-Metadata": "x !!!"}).status_code == 400
    url = requests.post(base, headers={**tus(teacher), "Upload-Length": "100"}).headers["Location"]
    # a PATCH must carry the offset media type
    wrong_type = requests.patch(url, data=b"x", headers={**tus(teacher), "Upload-Offset": "0",
                                                         "Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415
    # more than Upload-Length
    too_much = requests.patch(url, data=b"x" * 101, headers={**tus(teacher), "Upload-Offset": "0",
                                                             "Content-Type": "application/offset+octet-stream"})
    assert too_much.status_code == 413
    # not signed in; another teacher's upload is not found; a student cannot create one
    assert requests.head(url, headers={"Tus-Resumable": "1.0.0"}).status_code == 401
    other = tus(auth_headers(make_user("teacher")))
    assert requests.head(url, headers=other).status_code == 404
    assert requests.patch(url, data=b"x", headers={**other, "Upload-Offset": "0",
                                                   "Content-Type": "application/offset+octet-stream"}).status_code == 404
    assert requests.delete(url, headers=other).status_code == 404
    student = tus(auth_headers(make_user("student")))
    refused = requests.post(base, headers={**student, "Upload-Length": "10"})
    assert refused.status_code == 403 and refused.headers["Tus-Resumable"] == "1.0.0"
