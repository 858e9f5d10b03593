"""The storage service over HTTP, on local storage and on the S3 server
(moto): uploads (000 §六 七), file records and their access rules (004
§2.9), signed URLs, previews, avatars, and the service functions plugins
call.  Every test runs once per backend."""

from __future__ import annotations

import contextlib
import io
import time
import urllib.request
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from PIL import Image

from learnsail.storage import services, signing
from learnsail.storage.models import StoredFile
from learnsail.testing import count_queries
from learnsail.testing.authz import check_matrix
from tests.support import storage_plugin

LIMITS = "image=300KiB document=300KiB text=2KiB archive=300KiB audio=300KiB video=300KiB other=100KiB"
IMAGE, FILE, FILES = "/api/v1/upload/image", "/api/v1/upload/file", "/api/v1/files"


@contextlib.contextmanager
def filetest_installed():
    """Build the app with the test plugin that answers learnsail_file_access."""
    from learnsail import plugins

    real = plugins.discover

    def discover():
        found = dict(real())
        found["filetest"] = plugins.Plugin(info=storage_plugin.PLUGIN, module=storage_plugin)
        return found

    with mock.patch.object(plugins, "discover", discover):
        yield


@pytest.fixture(scope="session")
def learnsail_plugins() -> str:
    return "filetest"


@pytest.fixture(scope="session")
def learnsail_build_context():
    return filetest_installed


@pytest.fixture(scope="session", params=["local", "s3"])
def learnsail_extra_settings(request, learnsail_extra_settings):
    settings = {**learnsail_extra_settings, "learnsail.storage_size_limits": LIMITS,
                "learnsail.storage_image_max_side": "2000", "learnsail.storage_image_max_pixels": "1000000",
                "learnsail.storage_thumbnail_size": "16", "learnsail.storage_avatar_size": "32"}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        settings["learnsail.storage_url"] = (f"s3://{s3.access_key}:{s3.secret_key}@{s3.endpoint}/learnsail-http"
                                             f"?secure=false&region={s3.region}")
    return settings


@pytest.fixture
def storage(app):
    return app.registry["learnsail.storage"]


# --- helpers ----------------------------------------------------------------------------

def png(size=(40, 20), color="red", mode="RGB", fmt="PNG", **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **options)
    return out.getvalue()


def pdf(pages: int = 2) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def upload(testapp, headers, url, name, data, status=201, **fields):
    return testapp.post(url, params=list(fields.items()), upload_files=[("file", name, data)], headers=headers,
                        status=status)


def fetch(testapp, url: str, status: int = 200) -> tuple[bytes, dict[str, str]]:
    """GET a signed URL: served by the app (local storage) or the S3 server."""
    if url.startswith("http://localhost/"):
        response = testapp.get(url[len("http://localhost"):], status=status)
        return response.body, dict(response.headers)
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), dict(response.headers)


def signed(testapp, headers, url) -> str:
    response = testapp.get(url, headers=headers, status=302)
    assert response.headers["Cache-Control"] == "private, no-store"
    return response.location


def rows(dbsession) -> int:
    return dbsession.scalar(sa.select(sa.func.count()).select_from(StoredFile))


def expect_refused(response, detected: str) -> None:
    error = response.json["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["detected_type"] == detected, error


# --- uploads ------------------------------------------------------------------------------

def test_an_uploaded_image_comes_back_through_a_signed_url(testapp, actor_headers, storage, dbsession):
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated: the stored pixels must be upright
    exif[0x010F] = "Spy Camera Co"
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 0.0)}
    original = png((40, 20), "blue", fmt="JPEG", exif=exif)
    body = upload(testapp, actor_headers["student"], IMAGE, "../../我的 照片.JPG", original, category="notes").json
    assert {"file_url", "file_name", "file_size", "mime_type"} <= set(body)
    assert body["file_name"] == "我的 照片.JPG" and body["mime_type"] == "image/jpeg"
    assert (body["width"], body["height"]) == (20, 40) and body["category"] == "notes"
    assert body["visibility"] == "private" and body["file_url"].endswith(f"/api/v1/files/{body['id']}/download")
    row = dbsession.get(StoredFile, body["id"])
    assert row.storage_key.startswith("image/") and "照片" not in row.storage_key and storage.exists(row.storage_key)

    data, headers = fetch(testapp, signed(testapp, actor_headers["student"], body["file_url"]))
    assert len(data) == body["file_size"]
    import hashlib

    assert hashlib.sha256(data).hexdigest() == body["sha256"]
    stored = Image.open(io.BytesIO(data))
    assert stored.size == (20, 40) and not stored.getexif()
    assert "attachment" in headers["Content-Disposition"]
    assert "filename*=UTF-8''%E6%88%91%E7%9A%84%20%E7%85%A7%E7%89%87.JPG" in headers["Content-Disposition"]

    as_json = testapp.get(body["file_url"], params={"redirect": "false", "disposition": "inline"},
                          headers=actor_headers["student"]).json
    assert set(as_json) == {"url", "expires_at"}
    assert fetch(testapp, as_json["url"])[0] == data


def test_pdf_has_its_page_count_and_an_inline_preview(testapp, actor_headers):
    document = pdf(3)
    body = upload(testapp, actor_headers["teacher"], FILE, "handout.pdf", document).json
    assert body["mime_type"] == "application/pdf" and body["kind"] == "document" and body["page_count"] == 3
    data, headers = fetch(testapp, signed(testapp, actor_headers["teacher"], body["preview_url"]))
    assert data == document and headers["Content-Disposition"].startswith("inline")


def test_image_preview_is_a_small_thumbnail(testapp, actor_headers):
    body = upload(testapp, actor_headers["student"], IMAGE, "wide.png", png((200, 100), mode="RGBA")).json
    data, _ = fetch(testapp, signed(testapp, actor_headers["student"], body["preview_url"]))
    thumb = Image.open(io.BytesIO(data))
    assert thumb.format == "JPEG" and max(thumb.size) == 16 and thumb.size == (16, 8)
    text = upload(testapp, actor_headers["student"], FILE, "notes.txt", b"plain words").json
    assert text["preview_url"] is None
    response = testapp.get(f"{FILES}/{text['id']}/preview", headers=actor_headers["student"], status=404)
    assert response.json["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_a_record_whose_object_is_gone_is_404_not_500(testapp, actor_headers, dbsession, storage):
    body = upload(testapp, actor_headers["student"], IMAGE, "lost.png", png()).json
    row = dbsession.get(StoredFile, body["id"])
    storage.delete(row.storage_key)
    storage.delete(row.preview_key)
    row.preview_key = None  # so the preview must be made again, from the lost object
    dbsession.commit()
    response = testapp.get(body["preview_url"], headers=actor_headers["student"], status=404)
    assert response.json["error"] == {"code": "RESOURCE_NOT_FOUND", "message": "The file's content is missing.",
                                      "details": {}}


def test_the_content_decides_the_type_not_the_name(testapp, actor_headers, dbsession):
    headers = actor_headers["student"]
    before = rows(dbsession)
    expect_refused(upload(testapp, headers, FILE, "cat.png", pdf(), status=400), "application/pdf")
    expect_refused(upload(testapp, headers, IMAGE, "cat.png", pdf(), status=400), "application/pdf")
    expect_refused(upload(testapp, headers, IMAGE, "doc.pdf", pdf(), status=400), "application/pdf")
    expect_refused(upload(testapp, headers, FILE, "page.txt", b"<!DOCTYPE html><script>x</script>", status=400),
                   "text/html")
    expect_refused(upload(testapp, headers, FILE, "setup.txt", b"MZ\x90\x00\x03" + bytes(200), status=400),
                   "application/x-msdownload")
    expect_refused(upload(testapp, headers, FILE, "empty.txt", b"", status=400), "application/x-empty")
    expect_refused(upload(testapp, headers, IMAGE, "broken.png", png()[:60], status=400), "image/png")
    expect_refused(upload(testapp, headers, IMAGE, "x.bmp", png(fmt="BMP"), status=400), "image/bmp")
    assert rows(dbsession) == before
    # a name without an extension gets the detected one
    assert upload(testapp, headers, FILE, "README", b"read me").json["file_name"] == "README.txt"


def test_over_the_size_limit_is_413(testapp, actor_headers, dbsession):
    headers = actor_headers["student"]
    response = upload(testapp, headers, FILE, "big.txt", b"a" * 3000, status=413)
    assert response.json["error"] == {"code": "PAYLOAD_TOO_LARGE", "message": "The file is too large.",
                                      "details": {"max_bytes": 2048, "kind": "text"}}
    # a body over the endpoint's limit is refused before it is read
    response = upload(testapp, headers, IMAGE, "huge.png", b"\x89PNG\r\n\x1a\n" + bytes(400 * 1024), status=413)
    assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert rows(dbsession) == 0


def test_image_bombs_are_refused(testapp, actor_headers):
    bomb = png((1500, 1500), mode="1", color=0)  # 2.25 million pixels in a few KiB
    assert len(bomb) < 20 * 1024
    response = upload(testapp, actor_headers["student"], IMAGE, "bomb.png", bomb, status=400)
    assert "pixels" in response.json["error"]["details"]["file"][0]
    response = upload(testapp, actor_headers["student"], IMAGE, "tall.gif", png((10, 3000), fmt="GIF"), status=400)
    assert "at most 2000" in response.json["error"]["details"]["file"][0]


@pytest.mark.parametrize("kwargs, status, field", [
    ({"params": b'{"file": "x"}', "content_type": "application/json"}, 415, "content_type"),
    ({"params": [("category", "x")], "content_type": "multipart/form-data"}, 400, "file"),
    ({"params": [("category", "x")]}, 415, "content_type"),
    ({"params": [("colour", "red")], "upload_files": [("file", "a.txt", b"hi")]}, 400, "colour"),
    ({"params": [("visibility", "everyone")], "upload_files": [("file", "a.txt", b"hi")]}, 400, "visibility"),
    ({"upload_files": [("attachment", "a.txt", b"hi")]}, 400, "attachment"),
])
def test_bad_forms_are_clear_errors(testapp, actor_headers, dbsession, kwargs, status, field):
    response = testapp.post(FILE, headers=actor_headers["student"], status=status, **kwargs)
    assert field in response.json["error"]["details"], response.json
    assert rows(dbsession) == 0


def test_uploads_need_a_signed_in_user(testapp, actor_headers):
    for url in (IMAGE, FILE, "/api/v1/users/me/avatar"):
        response = upload(testapp, {}, url, "a.png", png(), status=401)
        assert response.json["error"]["code"] == "AUTH_FAILED"


# --- access rules -------------------------------------------------------------------------

def test_others_cannot_read_change_or_delete_my_private_file(testapp, actor_headers, storage, dbsession):
    body = upload(testapp, actor_headers["student"], FILE, "diary.txt", b"dear diary").json
    url = f"{FILES}/{body['id']}"
    owner_and_admin = {"anonymous": 401, "other_student": 403, "teacher": 403, "other_teacher": 403,
                       "student": 200, "admin": 200}
    for target in (url, f"{url}/download?redirect=false", f"{url}/preview?redirect=false"):
        expected = owner_and_admin if not target.endswith("preview?redirect=false") else \
            {**owner_and_admin, "student": 404, "admin": 404}  # no preview for text: past the access check
        check_matrix(testapp, actor_headers, "GET", target, expected)
    check_matrix(testapp, actor_headers, "PATCH", url, owner_and_admin, json=lambda actor: {"name": f"{actor}.txt"})
    assert dbsession.get(StoredFile, body["id"]).name == "admin.txt"
    check_matrix(testapp, actor_headers, "PUT", url, owner_and_admin, json={"category": "journal"})
    key = dbsession.get(StoredFile, body["id"]).storage_key
    check_matrix(testapp, actor_headers, "DELETE", url, {
        "anonymous": 401, "other_student": 403, "teacher": 403, "other_teacher": 403, "student": 204, "admin": 404})
    assert not storage.exists(key)  # removed after the commit


def test_visibility_opens_reading_but_never_writing(testapp, actor_headers):
    public = upload(testapp, actor_headers["teacher"], IMAGE, "cover.png", png(), visibility="public").json
    members = upload(testapp, actor_headers["teacher"], FILE, "notes.txt", b"for members",
                     visibility="authenticated").json
    everyone = {"anonymous": 200, "student": 200, "other_student": 200, "teacher": 200, "other_teacher": 200,
                "admin": 200}
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{public['id']}", everyone)
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{members['id']}", {**everyone, "anonymous": 401})
    # a public image works in an <img> without a token
    data, _ = fetch(testapp, testapp.get(public["file_url"], status=302).location)
    assert Image.open(io.BytesIO(data)).size == (40, 20)
    check_matrix(testapp, actor_headers, "PATCH", f"{FILES}/{public['id']}", {
        "anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 200, "admin": 200},
        json={"visibility": "private"})
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{public['id']}", {
        "anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 200, "admin": 200})


def test_plugins_decide_for_files_attached_to_their_objects(testapp, actor_headers, users, dbsession):
    ids = {}
    for box in ("open", "closed", "shared", "other"):
        body = upload(testapp, actor_headers["teacher"], FILE, f"{box}.txt", b"box content",
                      visibility="public").json
        services.attach(dbsession, dbsession.get(StoredFile, body["id"]), "filetest.box", box)
        ids[box] = body["id"]
    dbsession.commit()
    storage_plugin.CALLS.clear()
    signed_in = {"student": 200, "other_student": 200, "other_teacher": 200, "teacher": 200, "admin": 200}
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{ids['open']}", {"anonymous": 401, **signed_in})
    check_matrix(testapp, actor_headers, "PATCH", f"{FILES}/{ids['open']}", {
        "anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 200, "admin": 200},
        json={"category": "x"})
    # "closed" beats the file's public visibility; owners and admins still pass
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{ids['closed']}", {
        "anonymous": 401, "student": 403, "other_student": 403, "other_teacher": 403, "teacher": 200, "admin": 200})
    check_matrix(testapp, actor_headers, "PATCH", f"{FILES}/{ids['shared']}",
                 {"anonymous": 401, **signed_in}, json={"category": "y"})
    # no answer: the visibility (public) decides
    check_matrix(testapp, actor_headers, "GET", f"{FILES}/{ids['other']}", {"anonymous": 200, **signed_in})
    asked = {user_id for user_id, _, _ in storage_plugin.CALLS}
    assert users.teacher.id not in asked  # the owner is never asked about
    assert (None, ids["closed"], "read") in storage_plugin.CALLS


def test_list_shows_my_files_and_admins_everything(testapp, actor_headers, users, app):
    upload(testapp, actor_headers["student"], FILE, "a.txt", b"a", category="homework")
    upload(testapp, actor_headers["student"], IMAGE, "b.png", png())
    upload(testapp, actor_headers["teacher"], FILE, "c.txt", b"c")
    mine = testapp.get(FILES, headers=actor_headers["student"]).json
    assert mine["count"] == 2 and [r["file_name"] for r in mine["results"]] == ["b.png", "a.txt"]
    assert testapp.get(FILES, params={"category": "homework"}, headers=actor_headers["student"]).json["count"] == 1
    assert testapp.get(FILES, params={"kind": "image"}, headers=actor_headers["student"]).json["count"] == 1
    response = testapp.get(FILES, params={"owner_id": users.teacher.id}, headers=actor_headers["student"], status=403)
    assert "owner_id" in response.json["error"]["details"]
    assert testapp.get(FILES, headers=actor_headers["admin"]).json["count"] == 3
    teacher = testapp.get(FILES, params={"owner_id": users.teacher.id}, headers=actor_headers["admin"]).json
    assert [r["file_name"] for r in teacher["results"]] == ["c.txt"]
    testapp.get(FILES, params={"kind": "spaceship"}, headers=actor_headers["admin"], status=400)
    check_matrix(testapp, actor_headers, "GET", FILES, {"anonymous": 401, "student": 200, "other_student": 200,
                                                        "teacher": 200, "other_teacher": 200, "admin": 200})
    engine = app.registry["learnsail.db_engine"]
    with count_queries(engine) as few:
        testapp.get(FILES, headers=actor_headers["admin"])
    for n in range(4):
        upload(testapp, actor_headers["teacher"], FILE, f"more{n}.txt", b"m")
    with count_queries(engine) as many:
        assert testapp.get(FILES, headers=actor_headers["admin"]).json["count"] == 7
    assert len(many) == len(few)


def test_rename_keeps_a_name_that_suits_the_content(testapp, actor_headers, dbsession):
    body = upload(testapp, actor_headers["student"], FILE, "report.pdf", pdf()).json
    url, headers = f"{FILES}/{body['id']}", actor_headers["student"]
    changed = testapp.patch_json(url, {"name": "  Final\u202egpj.pdf ", "category": "reports",
                                       "visibility": "authenticated"}, headers=headers).json
    assert (changed["file_name"], changed["category"], changed["visibility"]) == (
        "Finalgpj.pdf", "reports", "authenticated")
    for bad in ({"name": "report.exe"}, {"visibility": "world"}, {"category": "Bad Category!"}, {"name": ""},
                {"owner_id": 1}):
        testapp.patch_json(url, bad, headers=headers, status=400)
    row = dbsession.get(StoredFile, body["id"])
    dbsession.refresh(row)
    assert (row.name, row.category, row.visibility) == ("Finalgpj.pdf", "reports", "authenticated")
    for bad_id in ("abc", "0", "99999999999999999999"):
        testapp.get(f"{FILES}/{bad_id}", headers=headers, status=(400 if bad_id == "abc" else 404))


# --- signed URLs of local storage ------------------------------------------------------------

def test_altered_or_expired_links_are_403(testapp, actor_headers, storage, app, dbsession):
    if storage.kind != "local":
        pytest.skip("the S3 test server does not check signatures (MinIO does)")
    body = upload(testapp, actor_headers["student"], FILE, "secret.txt", b"secret").json
    url = signed(testapp, actor_headers["student"], body["file_url"])
    path = url[len("http://localhost"):]
    assert testapp.get(path).body == b"secret"
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    response = testapp.get(tampered, status=403)
    assert response.json["error"]["code"] == "PERMISSION_DENIED"
    row = dbsession.get(StoredFile, body["id"])
    secret = app.registry.settings["learnsail.secret"]
    other_key = signing.make_token(secret, row.storage_key, int(time.time()) + 60)
    payload, _ = path.rsplit("/", 1)[1].split(".")
    testapp.get(f"/api/v1/storage/{other_key.split('.')[0]}.{payload[:10]}", status=403)
    expired = signing.make_token(secret, row.storage_key, int(time.time()) - 5)
    response = testapp.get(f"/api/v1/storage/{expired}", status=403)
    assert response.json["error"]["message"] == "The link has expired."
    # even a genuine token cannot name a path outside the storage
    escape = signing.make_token(secret, "../secret.key", int(time.time()) + 60)
    testapp.get(f"/api/v1/storage/{escape}", status=404)


def test_local_links_serve_byte_ranges(testapp, actor_headers, storage):
    if storage.kind != "local":
        pytest.skip("ranges of S3 objects are served by the S3 server")
    body = upload(testapp, actor_headers["student"], FILE, "digits.txt", b"0123456789").json
    path = signed(testapp, actor_headers["student"], body["file_url"])[len("http://localhost"):]
    response = testapp.get(path, headers={"Range": "bytes=2-5"}, status=206)
    assert response.body == b"2345" and response.headers["Content-Range"] == "bytes 2-5/10"


# --- avatars --------------------------------------------------------------------------------

def test_avatar_upload_sets_the_profile_avatar(testapp, actor_headers, dbsession):
    headers = actor_headers["student"]
    first = upload(testapp, headers, "/api/v1/users/me/avatar", "me.png", png((300, 150))).json
    assert (first["width"], first["height"]) == (32, 16) and first["visibility"] == "public"
    profile = testapp.get("/api/v1/users/profile", headers=headers).json
    assert profile["avatar_url"] == first["file_url"]
    data, _ = fetch(testapp, testapp.get(first["file_url"], status=302).location)  # no token needed
    assert Image.open(io.BytesIO(data)).size == (32, 16)
    second = upload(testapp, headers, "/api/v1/users/me/avatar", "new.jpg", png(fmt="JPEG")).json
    testapp.get(f"{FILES}/{first['id']}", headers=headers, status=404)
    assert testapp.get("/api/v1/users/profile", headers=headers).json["avatar_url"] == second["file_url"]
    testapp.delete(f"{FILES}/{second['id']}", headers=headers, status=204)
    assert testapp.get("/api/v1/users/profile", headers=headers).json["avatar_url"] is None
    expect_refused(upload(testapp, headers, "/api/v1/users/me/avatar", "me.pdf", pdf(), status=400),
                   "application/pdf")


# --- the service functions plugins use ------------------------------------------------------------

class OneWay(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self.data), 1000)
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


def request_session(app):
    """A session in its own transaction, as a request or a task has."""
    import transaction

    from learnsail.db import get_session

    tm = transaction.TransactionManager(explicit=True)
    session = get_session(app.registry["learnsail.dbsession_factory"], tm)
    session.info.update({"learnsail.registry": app.registry, "learnsail.tm": tm})
    tm.begin()
    return session, tm


def test_plugins_store_attach_and_delete_files(app, users, storage):
    session, tm = request_session(app)
    stored = services.save_upload(session, OneWay(pdf(1)), "answers.PDF",
                                  owner_id=users.student.id, accept=("application/pdf", "text/plain"),
                                  category="assignment", related=("filetest.box", 7))
    with pytest.raises(services.UnsupportedFile):  # not in accept
        services.save_upload(session, io.BytesIO(png()), "a.png", owner_id=None, accept=("application/pdf",))
    with pytest.raises(services.FileTooLarge):
        services.save_upload(session, OneWay(b"t" * 5000), "a.txt", owner_id=None, max_size=4000)
    assert services.files_of(session, "filetest.box", "7") == [stored]
    tm.commit()
    session, tm = request_session(app)
    assert services.delete_related(session, "filetest.box", 7) == 1
    tm.commit()
    assert not storage.exists(stored.storage_key)
    with pytest.raises(ValueError):
        services.attach(session, stored, "Not A Type", 1)


def test_a_transaction_that_aborts_leaves_no_object_behind(app, users, storage):
    session, tm = request_session(app)
    stored = services.save_upload(session, io.BytesIO(png()), "a.png", owner_id=users.student.id,
                                  accept=services.IMAGE_TYPES)
    keys = [stored.storage_key, stored.preview_key]
    assert all(storage.exists(key) for key in keys)
    tm.abort()
    assert not any(storage.exists(key) for key in keys)


def test_objects_assembled_by_a_plugin_can_be_registered(app, users, storage, testapp, actor_headers):
    first = bytes(range(256)) * (5 * 4096)  # 5 MiB
    storage.put("uploads/test-compose/1", io.BytesIO(first), len(first))
    storage.put("uploads/test-compose/2", io.BytesIO(b"end"), 3)
    key = "video/test/composed.mp4"
    storage.compose(key, ["uploads/test-compose/1", "uploads/test-compose/2"], "video/mp4")
    assert storage.delete_prefix("uploads/test-compose/") == 2
    session, tm = request_session(app)
    row = services.register_object(session, key, name="lecture.mp4", owner_id=users.teacher.id,
                                   mime_type="video/mp4")
    file_id, size = row.id, row.size
    tm.commit()
    assert size == len(first) + 3 and row.kind == "video"
    body = testapp.get(f"{FILES}/{file_id}", headers=actor_headers["teacher"]).json
    assert body["file_size"] == size and body["preview_url"] is None


def test_erasing_an_account_removes_its_files(testapp, actor_headers, users, dbsession, storage):
    headers = actor_headers["other_student"]
    own = upload(testapp, headers, FILE, "mine.txt", b"mine").json
    attached = upload(testapp, headers, FILE, "shared.txt", b"course").json
    services.attach(dbsession, dbsession.get(StoredFile, attached["id"]), "filetest.box", "shared")
    dbsession.commit()
    export = testapp.get("/api/v1/users/me/export", headers=headers).json
    assert {f["name"] for f in export["plugins"]["core.storage"]["files"]} == {"mine.txt", "shared.txt"}
    key = dbsession.get(StoredFile, own["id"]).storage_key
    testapp.delete_json("/api/v1/users/me", {"password": "correct horse battery"}, headers=headers, status=204)
    dbsession.expire_all()
    assert dbsession.get(StoredFile, own["id"]).deleted_at is not None and not storage.exists(key)
    assert dbsession.get(StoredFile, attached["id"]).owner_id is None  # stays with the object


def test_uploads_are_not_replayed_and_storage_is_health_checked(app, testapp):
    from pyramid.request import Request

    from learnsail.storage.views import retry_attempts

    request = Request.blank(IMAGE)
    request.registry = app.registry
    assert retry_attempts(request) == 1
    other = Request.blank("/api/v1/users/login")
    other.registry = app.registry
    assert retry_attempts(other) is None
    assert testapp.get("/healthz").json["checks"]["storage"] == {"status": "ok"}


def test_the_openapi_document_describes_the_multipart_uploads(testapp):
    doc = testapp.get("/api/openapi.json").json
    for path in ("/api/v1/upload/image", "/api/v1/upload/file", "/api/v1/users/me/avatar"):
        operation = doc["paths"][path]["post"]
        body = operation["requestBody"]
        assert body["required"] is True and list(body["content"]) == ["multipart/form-data"], path
        ref = body["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][ref]
        assert schema["properties"]["file"]["format"] == "binary" and "file" in schema["required"]
        assert {"201", "400", "401", "413", "415"} <= set(operation["responses"])
    upload = doc["components"]["schemas"][doc["paths"]["/api/v1/upload/file"]["post"]["requestBody"]["content"]
                                          ["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"category", "visibility"} <= set(upload["properties"])


class _Chunked(io.RawIOBase):
    """A request body of unknown length (chunked transfer encoding, as the
    server hands it on), counting what the app reads from it."""

    def __init__(self, head: bytes, filler: int, tail: bytes) -> None:
        self.parts = [head, b"\0" * filler, tail]
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.parts and not self.parts[0]:
            self.parts.pop(0)
        if not self.parts:
            return 0
        count = min(len(buffer), len(self.parts[0]), 1 << 16)
        buffer[:count] = self.parts[0][:count]
        self.parts[0] = self.parts[0][count:]
        self.read_bytes += count
        return count


def _chunked_upload(app, headers, payload_head: bytes, filler: int, tail: bytes):
    from webob import Request

    boundary = "chunkedboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + payload_head
    stream = _Chunked(head, filler, tail + f"\r\n--{boundary}--\r\n".encode())
    request = Request.blank(IMAGE, method="POST", headers={
        **headers, "Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"})
    request.environ.pop("CONTENT_LENGTH", None)
    request.environ["wsgi.input"] = io.BufferedReader(stream)
    request.environ["wsgi.input_terminated"] = True
    request.environ["REMOTE_ADDR"] = "127.0.0.1"
    return request.get_response(app), stream


def test_a_chunked_upload_is_streamed_and_stopped_at_its_limit(app, actor_headers, dbsession):
    image = png((30, 30))
    response, _ = _chunked_upload(app, actor_headers["student"], image, 0, b"")
    assert response.status_int == 201, response.body
    assert response.json["mime_type"] == "image/png" and response.json["file_size"] > 0
    limit = services.max_upload_size(app.registry.settings, services.IMAGE_TYPES)
    before = rows(dbsession)
    response, stream = _chunked_upload(app, actor_headers["student"], image, 4 * limit, b"")
    assert response.status_int == 413 and response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert stream.read_bytes < limit + (1 << 20)  # stopped at the limit, not read to the end
    assert rows(dbsession) == before


def test_body_limits_may_name_a_prefix_for_routes_with_an_id_in_the_path():
    """A resumable upload's PATCH goes to /api/v1/videos/tus/<id>: a key
    ending in "/" gives every path under it the limit; the exact path wins,
    then the longest prefix; other paths have none of their own."""
    from learnsail.ops import body_limit_of

    registry = {"learnsail.body_limits": {"/api/v1/upload/file": 10, "/api/v1/videos/": 20,
                                          "/api/v1/videos/tus/": 30, "/api/v1/videos/tus/abc": 40}}
    assert body_limit_of(registry, "/api/v1/upload/file") == 10
    assert body_limit_of(registry, "/api/v1/upload/file/x") is None
    assert body_limit_of(registry, "/api/v1/videos/tus/xyz") == 30
    assert body_limit_of(registry, "/api/v1/videos/tus/abc") == 40
    assert body_limit_of(registry, "/api/v1/videos/upload") == 20
    assert body_limit_of(registry, "/api/v1/courses") is None
    assert body_limit_of({}, "/api/v1/upload/file") is None
