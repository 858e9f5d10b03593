"""The storage backends (local directory and S3 via the moto server) and the
pieces under the upload endpoints: key rules, signed tokens, content
sniffing, image cleaning, the streaming form reader, the settings."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib

import pytest
from PIL import Image

from learnsail.settings import SettingError
from learnsail.storage import multipart, parse_size_limits, signing, sniff
from learnsail.storage.backends import (MIN_PART_SIZE, InvalidKey, LocalStorage, ObjectNotFound, S3Storage,
                                        StorageError, build_storage, check_key, new_key)
from learnsail.storage.images import ImageRejected, clean_image

SECRET = "backend-test-secret-backend-test-secret"


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "files", SECRET)
    server = request.getfixturevalue("s3_server")
    return S3Storage(server.endpoint, server.access_key, server.secret_key, f"b-{uuid.uuid4().hex[:12]}",
                     secure=False, region=server.region, part_size=MIN_PART_SIZE)


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), dict(response.headers)


def read_all(storage, key, **kwargs) -> bytes:
    with storage.open(key, **kwargs) as stream:
        return stream.read()


class OneWay(io.RawIOBase):
    """A stream that cannot seek and hands out small reads (like a socket)."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), len(self.data), 65536)
        buffer[:count] = self.data[:count]
        self.data = self.data[count:]
        return count


# --- both backends ---------------------------------------------------------------

def test_put_open_stat_delete_round_trip(backend):
    key = new_key("document", ".pdf")
    info = backend.put(key, io.BytesIO(b"%PDF-1.4 hello"), 14, "application/pdf")
    assert info.size == 14 and info.key == key
    assert read_all(backend, key) == b"%PDF-1.4 hello"
    assert read_all(backend, key, offset=5, length=3) == b"1.4"
    stat = backend.stat(key)
    assert stat.size == 14 and stat.content_type == "application/pdf" and stat.etag
    assert backend.exists(key)
    backend.delete(key)
    backend.delete(key)  # idempotent
    assert not backend.exists(key)
    with pytest.raises(ObjectNotFound):
        backend.stat(key)
    with pytest.raises(ObjectNotFound):
        backend.open(key)


def test_put_of_unknown_length_streams_in_parts(backend):
    # larger than one S3 part: a multipart upload of a stream that cannot seek
    data = os.urandom(MIN_PART_SIZE + 123457)
    key = new_key("video", ".mp4")
    info = backend.put(key, OneWay(data), None, "video/mp4")
    assert info.size == len(data)
    assert hashlib.sha256(read_all(backend, key)).digest() == hashlib.sha256(data).digest()
    assert backend.stat(key).size == len(data)


def test_put_stops_at_the_declared_length(backend):
    key = new_key("text", ".txt")
    assert backend.put(key, io.BytesIO(b"0123456789"), 4, "text/plain").size == 4
    assert read_all(backend, key) == b"0123"


def test_delete_prefix_and_iter_keys(backend):
    for name in ("a/1.txt", "a/2.txt", "a/b/3.txt", "ab/4.txt", "c/5.txt"):
        backend.put(f"up/{name}", io.BytesIO(b"x"), 1, "text/plain")
    assert sorted(backend.iter_keys("up/a/")) == ["up/a/1.txt", "up/a/2.txt", "up/a/b/3.txt"]
    assert backend.delete_prefix("up/a") == 4  # a string prefix: "up/ab/4.txt" too
    assert sorted(backend.iter_keys("up/")) == ["up/c/5.txt"]
    with pytest.raises(InvalidKey):
        backend.delete_prefix("")


def test_compose_assembles_parts_in_order(backend):
    first, second = os.urandom(MIN_PART_SIZE), b"the tail"
    backend.put("uploads/x/1", io.BytesIO(first), len(first))
    backend.put("uploads/x/2", io.BytesIO(second), len(second))
    info = backend.compose("video/whole.mp4", ["uploads/x/1", "uploads/x/2"], "video/mp4")
    assert info.size == len(first) + len(second)
    assert read_all(backend, "video/whole.mp4", offset=len(first) - 2) == first[-2:] + second
    assert backend.stat("video/whole.mp4").content_type == "video/mp4"
    assert backend.exists("uploads/x/1")  # parts stay until the caller deletes them


def test_compose_refuses_small_parts_and_missing_ones(backend):
    backend.put("uploads/y/1", io.BytesIO(b"small"), 5)
    backend.put("uploads/y/2", io.BytesIO(b"tail"), 4)
    with pytest.raises(ValueError, match="at least"):
        backend.compose("video/bad.mp4", ["uploads/y/1", "uploads/y/2"])
    with pytest.raises(ObjectNotFound):
        backend.compose("video/bad.mp4", ["uploads/y/missing"])
    with pytest.raises(ValueError):
        backend.compose("video/bad.mp4", [])
    assert not backend.exists("video/bad.mp4")


def test_signed_url_serves_the_object(backend):
    backend.put("document/report.pdf", io.BytesIO(b"%PDF-1.7 x"), 10, "application/pdf")
    url = backend.signed_url("document/report.pdf", 60, filename="Report 报告.pdf", content_type="application/pdf")
    if backend.kind == "local":
        assert url.startswith("/api/v1/storage/")
        grant = backend.read_token(url.rsplit("/", 1)[1])
        assert grant["key"] == "document/report.pdf" and grant["filename"] == "Report 报告.pdf"
    else:
        body, headers = fetch(url)
        assert body == b"%PDF-1.7 x"
        assert "filename*=UTF-8''Report%20%E6%8A%A5" in headers["Content-Disposition"]
        assert headers["content-type"] == "application/pdf"
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/../b", ".hidden", "a/.tmp/x", "", "a b",
                                 "a\\b", "x" * 600, "a/\x00"])
def test_keys_the_platform_never_makes_are_refused(backend, key):
    with pytest.raises(InvalidKey):
        backend.put(key, io.BytesIO(b"x"), 1)


# --- local specifics --------------------------------------------------------------

def test_local_refuses_a_key_escaping_the_root_through_a_link(tmp_path):
    storage = LocalStorage(tmp_path / "files", SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "image").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey, match="leaves"):
        storage.put("image/x.png", io.BytesIO(b"x"), 1)
    assert list(outside.iterdir()) == []


def test_local_put_is_atomic_and_leaves_no_temporary_file(tmp_path):
    storage = LocalStorage(tmp_path / "files", SECRET)
    storage.put("text/a.txt", io.BytesIO(b"old"), 3)

    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise OSError("connection reset")

    with pytest.raises(StorageError, match="connection reset"):
        storage.put("text/a.txt", Broken(b"new"), 3)
    assert read_all(storage, "text/a.txt") == b"old"
    assert list(storage.tmp.iterdir()) == []
    storage.delete("text/a.txt")
    assert not (storage.root / "text").exists()  # empty directories are pruned


def test_new_keys_are_platform_made():
    key = new_key("image", ".PNG")
    kind, year, month, name = key.split("/")
    assert kind == "image" and len(year) == 4 and len(month) == 2 and name.endswith(".png")
    assert new_key("document", "../../x").endswith(tuple("0123456789abcdef"))  # a bad extension is dropped
    assert check_key("video/2026/01/a.mp4")


# --- signed tokens ----------------------------------------------------------------

def test_tokens_are_refused_when_altered_or_expired():
    token = signing.make_token(SECRET, "image/a.png", int(time.time()) + 60, filename="a.png")
    assert signing.read_token(SECRET, token)["key"] == "image/a.png"
    body, signature = token.split(".")
    forged = signing.make_token("another-secret", "image/b.png", int(time.time()) + 60)
    for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), forged, body, "", "a.b.c",
                forged.split(".")[0] + "." + signature, "é.é"):
        with pytest.raises(signing.InvalidToken):
            signing.read_token(SECRET, bad)
    expired = signing.make_token(SECRET, "image/a.png", int(time.time()) - 1)
    with pytest.raises(signing.ExpiredToken):
        signing.read_token(SECRET, expired)


# --- settings -----------------------------------------------------------------------

def test_storage_url_selects_the_backend(tmp_path):
    assert build_storage("", data_dir=tmp_path, secret=SECRET).root == (tmp_path / "files").resolve()
    assert build_storage("file://blobs", data_dir=tmp_path, secret=SECRET).root == (tmp_path / "blobs").resolve()
    assert build_storage(f"file://{tmp_path}/abs", data_dir="/nowhere", secret=SECRET).root == tmp_path / "abs"
    s3 = build_storage("s3://AK:S%2FK@minio.internal:9000/media?secure=false&region=cn-north-1"
                       "&public_url=https://files.example.edu", data_dir=tmp_path, secret=SECRET)
    assert (s3.endpoint, s3.bucket, s3.region) == ("minio.internal:9000", "media", "cn-north-1")
    for bad in ("ftp://x", "s3://host/bucket", "s3://a:b@host/", "s3://a:b@h/bucket?secure=maybe", "s3://a:b@h/bucket?x=1",
                "s3://a:b@h/bucket?part_size=1", "s3://a:b@h/bucket?public_url=ftp://x", "s3://a:b@h/Bad_Bucket",
                "s3://a:b@h/bucket?parallel=0", "s3://a:b@h/bucket?parallel=many"):
        with pytest.raises(ValueError):
            build_storage(bad, data_dir=tmp_path, secret=SECRET)


def test_a_bad_storage_url_stops_the_app_naming_the_setting(tmp_path):
    from learnsail.app import configure

    with pytest.raises(SettingError, match="learnsail.storage_url") as info:
        configure({"learnsail.data_dir": str(tmp_path), "learnsail.plugins": "",
                   "learnsail.storage_url": "s3://KEY:TOPSECRET@host/"}, environ={})
    assert "TOPSECRET" not in str(info.value)


def test_size_limits_setting():
    limits = parse_size_limits("image=2MiB video=1GiB other=100")
    assert limits["image"] == 2 * 1024 ** 2 and limits["video"] == 1024 ** 3
    assert limits["document"] == limits["other"] == 100
    for bad in ("image=2MB", "picture=1MiB", "image"):
        with pytest.raises(ValueError):
            parse_size_limits(bad)


# --- content sniffing -------------------------------------------------------------------

def image_bytes(fmt: str, size=(8, 6), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, fmt)
    return out.getvalue()


def zip_bytes(names: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    return out.getvalue()


def ole_bytes(stream_name: str) -> bytes:
    """A minimal OLE2 compound file whose directory names ``stream_name``."""
    sector = 512
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<H", header, 30, 9)  # 512-byte sectors
    struct.pack_into("<I", header, 44, 1)  # one FAT sector
    struct.pack_into("<I", header, 48, 1)  # the directory starts at sector 1
    fat_list = [0] + [0xFFFFFFFF] * 108  # FAT in sector 0
    struct.pack_into("<109I", header, 76, *fat_list)
    fat = struct.pack("<128I", 0xFFFFFFFD, 0xFFFFFFFE, *([0xFFFFFFFF] * 126))
    directory = bytearray(sector)
    for index, name in enumerate(("Root Entry", stream_name)):
        encoded = name.encode("utf-16-le") + b"\0\0"
        directory[index * 128:index * 128 + len(encoded)] = encoded
        struct.pack_into("<H", directory, index * 128 + 64, len(encoded))
    return bytes(header) + fat + bytes(directory)


OOXML = "application/vnd.openxmlformats-officedocument"
SAMPLES = {
    "image/jpeg": image_bytes("JPEG"),
    "image/png": image_bytes("PNG"),
    "image/gif": image_bytes("GIF"),
    "image/webp": image_bytes("WEBP"),
    "image/bmp": image_bytes("BMP"),
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
    f"{OOXML}.wordprocessingml.document": zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}),
    f"{OOXML}.spreadsheetml.sheet": zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<x/>"}),
    f"{OOXML}.presentationml.presentation": zip_bytes({"[Content_Types].xml": b"<T/>",
                                                       "ppt/presentation.xml": b"<p/>"}),
    "application/vnd.ms-word.document.macroEnabled.12": zip_bytes(
        {"[Content_Types].xml": b"<T/>", "word/document.xml": b"<w/>", "word/vbaProject.bin": b"\0"}),
    "application/epub+zip": zip_bytes({"mimetype": b"application/epub+zip", "content.opf": b"<x/>"}),
    "application/zip": zip_bytes({"notes.txt": b"hello"}),
    "application/java-archive": zip_bytes({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0"}),
    "application/msword": ole_bytes("WordDocument"),
    "application/vnd.ms-excel": ole_bytes("Workbook"),
    "application/vnd.ms-powerpoint": ole_bytes("PowerPoint Document"),
    "application/x-ole-storage": ole_bytes("SummaryInformation"),
    "text/plain": "名字,分数\nAda,98\n".encode("utf-8"),
    "text/html": b"  <!DOCTYPE html><html><script>alert(1)</script>",
    "image/svg+xml": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
    "application/xml": b'<?xml version="1.0"?><root/>',
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 32,
    "audio/wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "audio/mp4": b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00",
    "video/mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41",
    "video/quicktime": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00",
    "video/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
    "application/x-7z-compressed": b"7z\xbc\xaf\x27\x1c\x00\x04",
    "application/x-msdownload": b"MZ\x90\x00\x03\x00\x00\x00",
    "application/x-executable": b"\x7fELF\x02\x01\x01",
    "application/octet-stream": bytes(range(256)) * 4,
    "application/x-empty": b"",
}


@pytest.mark.parametrize("mime", sorted(SAMPLES))
def test_content_decides_the_type(mime):
    stream = io.BytesIO(SAMPLES[mime])
    stream.seek(3)
    assert sniff.detect(stream).mime == mime
    assert stream.tell() == 0


def test_gb18030_text_is_text_and_names_must_suit_the_content():
    assert sniff.detect(io.BytesIO("成绩单：张三 九十分\r\n".encode("gb18030"))).mime == "text/plain"
    pdf = sniff.TYPES["application/pdf"]
    assert pdf.name_fits("report.PDF") and pdf.name_fits("report") and not pdf.name_fits("cat.png")
    assert sniff.extension_of("archive.tar.gz") == ".gz" and sniff.extension_of(".bashrc") == ""


# --- images -------------------------------------------------------------------------------

BOUNDS = {"max_side": 4000, "max_pixels": 4_000_000}


def test_images_are_re_encoded_without_metadata_and_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    exif[0x010F] = "Spy Camera Co"  # make
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 0.0)}  # GPS
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "blue").save(out, "JPEG", exif=exif, comment=b"secret note")
    clean = clean_image(io.BytesIO(out.getvalue()), "image/jpeg", **BOUNDS)
    stored = Image.open(clean.file)
    assert (clean.width, clean.height) == stored.size == (20, 40)
    assert not stored.getexif() and "exif" not in stored.info and "comment" not in stored.info
    clean.file.seek(0)
    assert clean.size == len(clean.file.read())


def test_animations_keep_their_frames():
    frames = [Image.new("RGB", (10, 10), color) for color in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0, comment=b"hidden")
    clean = clean_image(io.BytesIO(out.getvalue()), "image/gif", **BOUNDS)
    stored = Image.open(clean.file)
    assert stored.n_frames == 3 and "comment" not in stored.info


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data, reason", [
    (png_claiming(100000, 10), "at most 4000"),
    (png_claiming(3000, 3000), "pixels"),
    (png_claiming(60000, 60000), "pixels|at most"),  # past Pillow's own bomb guard too
    (image_bytes("PNG")[:40], "valid"),  # truncated
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "valid"),
])
def test_bombs_and_broken_images_are_refused(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        clean_image(io.BytesIO(data), "image/png", **BOUNDS)


# --- the form reader ------------------------------------------------------------------------

def form_body(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def read(body: bytes, **kwargs):
    options = {"file_fields": ("file",), "max_file_size": 1000, **kwargs}
    return multipart.read_form(OneWay(body), "multipart/form-data; boundary=XyZ", len(body), **options)


def test_form_reader_streams_files_and_reads_fields():
    payload = b"\r\n--Xy almost a boundary\r\n-" * 200
    body = form_body([("category", None, "教材".encode()), ("file", "a/b/c.txt", payload)])
    form = read(body, max_file_size=len(payload))
    assert form.fields == {"category": "教材"}
    upload = form.files["file"]
    assert upload.filename == "a/b/c.txt" and upload.size == len(payload) and upload.file.read() == payload


def test_form_reader_writes_a_file_part_to_the_sink_the_caller_chooses():
    """A resumable upload's chunk goes straight to its place: the sink is
    chosen when the file part starts, knowing the fields sent before it."""
    class Sink:
        def __init__(self):
            self.data, self.closed = bytearray(), False

        def write(self, data):
            self.data += data

        def close(self):
            self.closed = True

    sinks = []

    def choose(form, name, filename, content_type):
        assert (name, filename, content_type, form.fields) == ("file", "c.bin", "", {"index": "3"})
        sinks.append(Sink())
        return sinks[-1]

    payload = os.urandom(300_000)
    form = read(form_body([("index", None, b"3"), ("file", "c.bin", payload), ("after", None, b"x")]),
                max_file_size=len(payload), file_sink=choose)
    assert form.files["file"].file is sinks[0] and bytes(sinks[0].data) == payload
    assert form.files["file"].size == len(payload) and form.fields == {"index": "3", "after": "x"}
    form.close()
    assert sinks[0].closed

    def refuse(form, name, filename, content_type):
        raise multipart.FormError("Send the index first.", "index")

    with pytest.raises(multipart.FormError) as info:
        read(form_body([("file", "c.bin", b"1")]), file_sink=refuse)
    assert info.value.field == "index"


@pytest.mark.parametrize("body, field", [
    (form_body([("other", "x.txt", b"1")]), "other"),
    (form_body([("file", "x.txt", b"1"), ("file", "y.txt", b"2")]), "file"),
    (form_body([("note", None, b"x" * 5000)]), "note"),
    (form_body([("note", None, b"\xff\xfe")]), "note"),
    (form_body([("file", "x.txt", b"1" * 100)])[:-20], "file"),
    (b"no boundary anywhere", "body"),
    (b"--XyZ\r\nBroken header line\r\n\r\nx\r\n--XyZ--", "body"),
])
def test_form_reader_refuses_malformed_forms(body, field):
    with pytest.raises(multipart.FormError) as info:
        read(body)
    assert info.value.field == field


def test_form_reader_stops_as_soon_as_the_file_is_too_large():
    class Endless(io.RawIOBase):
        """A form whose file never ends."""

        head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'

        def readable(self):
            return True

        def readinto(self, buffer):
            if self.head:
                count, self.head = len(self.head), b""
                buffer[:count] = Endless.head
                return count
            buffer[:] = b"a" * len(buffer)
            return len(buffer)

    with pytest.raises(multipart.FormTooLarge):
        multipart.read_form(Endless(), "multipart/form-data; boundary=XyZ", None, file_fields=("file",),
                            max_file_size=10 * 1024 * 1024)
    with pytest.raises(multipart.FormError, match="multipart/form-data"):
        multipart.read_form(io.BytesIO(b"{}"), "application/json", 2, file_fields=("file",), max_file_size=1)


# --- outages -------------------------------------------------------------------------------------

def test_an_unreachable_storage_server_is_503_not_500(tmp_path, fresh_database_url):
    import webtest

    from learnsail import migrations
    from learnsail.app import configure, make_wsgi_app
    from learnsail.db import get_session
    from learnsail.identity.services import create_user
    from learnsail.testing import isolated_environ
    from learnsail.testing.identity import bearer
    from learnsail.testing.services import free_port

    settings = {"learnsail.data_dir": str(tmp_path), "learnsail.database_url": fresh_database_url,
                "learnsail.plugins": "", "learnsail.secret": SECRET, "learnsail.log_level": "CRITICAL",
                "learnsail.storage_url": f"s3://key:secret@127.0.0.1:{free_port()}/files?secure=false"}
    config = configure(settings, environ=isolated_environ())
    migrations.upgrade(config.registry.settings, config.registry["learnsail.plugins"])
    app = webtest.TestApp(make_wsgi_app(config))
    import transaction

    tm = transaction.TransactionManager(explicit=True)
    session = get_session(config.registry["learnsail.dbsession_factory"], tm)
    with tm:
        user = create_user(session, password="correct horse battery", role="student",
                           pm=config.registry["learnsail.pm"], username="outage", email="outage@example.com")
        headers = bearer(config.registry.settings, user)
    response = app.post("/api/v1/upload/file", upload_files=[("file", "a.txt", b"hello")], headers=headers,
                        status=503)
    assert response.json["error"]["code"] == "SERVICE_UNAVAILABLE" and response.headers["Retry-After"] == "30"
    health = app.get("/healthz", status=503).json
    assert health["checks"]["storage"]["status"] == "error"
    config.registry["learnsail.db_engine"].dispose()
