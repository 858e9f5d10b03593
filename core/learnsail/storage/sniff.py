"""What a file is, from its bytes (never from its name).

:func:`detect` reads the start of a seekable file (and, for ZIP and OLE2
containers, their directory) and answers a :class:`FileType`: the MIME
type, the extension the platform gives such files, the extensions a name
may carry for it, and its kind (image, document, text, archive, audio,
video, other).  Unknown content is ``application/octet-stream``.

Active content is told apart from text: HTML, SVG and XML are their own
types (not ``text/plain``), so allowing text never lets a page in.
"""

from __future__ import annotations

import codecs
import dataclasses
import struct
import zipfile
from typing import BinaryIO

HEAD_SIZE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class FileType:
    mime: str
    ext: str  #: the extension given to stored files of this type (with its dot)
    kind: str  #: image, document, text, archive, audio, video, other
    extensions: frozenset[str] = frozenset()  #: extensions a file name may carry

    def name_fits(self, filename: str) -> bool:
        """Does ``filename``'s extension (if it has one) suit this type?"""
        ext = extension_of(filename)
        return not ext or ext == self.ext or ext in self.extensions


def _t(mime: str, ext: str, kind: str, *more: str) -> FileType:
    return FileType(mime, ext, kind, frozenset({ext, *more}))


OOXML = "application/vnd.openxmlformats-officedocument"
TYPES: dict[str, FileType] = {t.mime: t for t in (
    _t("image/jpeg", ".jpg", "image", ".jpeg", ".jpe", ".jfif"),
    _t("image/png", ".png", "image"),
    _t("image/gif", ".gif", "image"),
    _t("image/webp", ".webp", "image"),
    _t("image/bmp", ".bmp", "image", ".dib"),
    _t("image/tiff", ".tif", "image", ".tiff"),
    _t("image/heic", ".heic", "image", ".heif"),
    _t("image/avif", ".avif", "image"),
    _t("image/svg+xml", ".svg", "image", ".svgz"),
    _t("application/pdf", ".pdf", "document"),
    _t(f"{OOXML}.wordprocessingml.document", ".docx", "document"),
    _t(f"{OOXML}.spreadsheetml.sheet", ".xlsx", "document"),
    _t(f"{OOXML}.presentationml.presentation", ".pptx", "document"),
    _t("application/vnd.ms-word.document.macroEnabled.12", ".docm", "document"),
    _t("application/vnd.ms-excel.sheet.macroEnabled.12", ".xlsm", "document"),
    _t("application/vnd.ms-powerpoint.presentation.macroEnabled.12", ".pptm", "document"),
    _t("application/msword", ".doc", "document", ".dot"),
    _t("application/vnd.ms-excel", ".xls", "document", ".xlt"),
    _t("application/vnd.ms-powerpoint", ".ppt", "document", ".pps", ".pot"),
    _t("application/x-ole-storage", ".ole", "other", ".msi", ".msg"),
    _t("application/vnd.oasis.opendocument.text", ".odt", "document"),
    _t("application/vnd.oasis.opendocument.spreadsheet", ".ods", "document"),
    _t("application/vnd.oasis.opendocument.presentation", ".odp", "document"),
    _t("application/epub+zip", ".epub", "document"),
    _t("text/plain", ".txt", "text", ".text", ".csv", ".tsv", ".md", ".markdown", ".log", ".srt", ".vtt",
       ".json", ".yaml", ".yml", ".ini", ".conf", ".tex", ".rst"),
    _t("text/html", ".html", "text", ".htm", ".xhtml"),
    _t("application/xml", ".xml", "text"),
    _t("application/zip", ".zip", "archive"),
    _t("application/java-archive", ".jar", "archive", ".war"),
    _t("application/vnd.android.package-archive", ".apk", "archive"),
    _t("application/x-7z-compressed", ".7z", "archive"),
    _t("application/vnd.rar", ".rar", "archive"),
    _t("application/gzip", ".gz", "archive", ".tgz"),
    _t("audio/mpeg", ".mp3", "audio"),
    _t("audio/aac", ".aac", "audio"),
    _t("audio/mp4", ".m4a", "audio", ".m4b"),
    _t("audio/wav", ".wav", "audio"),
    _t("audio/ogg", ".ogg", "audio", ".oga", ".opus"),
    _t("audio/flac", ".flac", "audio"),
    _t("video/mp4", ".mp4", "video", ".m4v"),
    _t("video/quicktime", ".mov", "video", ".qt"),
    _t("video/3gpp", ".3gp", "video", ".3g2"),
    _t("video/webm", ".webm", "video"),
    _t("video/x-matroska", ".mkv", "video", ".mka"),
    _t("video/x-msvideo", ".avi", "video"),
    _t("video/x-flv", ".flv", "video"),
    _t("video/ogg", ".ogv", "video"),
    _t("application/x-msdownload", ".exe", "other", ".dll", ".com", ".scr"),
    _t("application/x-executable", ".elf", "other", ".so", ".bin"),
    _t("application/x-empty", "", "other"),
    _t("application/octet-stream", ".bin", "other"),
)}

#: the image types the platform decodes and re-encodes (uploads of images)
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def extension_of(filename: str) -> str:
    """The lower-case extension of ``filename`` with its dot, or ``""``."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return f".{ext.lower()}" if dot and stem and ext else ""


def detect(fileobj: BinaryIO) -> FileType:
    """The type of the seekable ``fileobj``'s content (read from the start;
    the position is put back to the start)."""
    fileobj.seek(0)
    head = fileobj.read(HEAD_SIZE)
    try:
        if not head:
            return TYPES["application/x-empty"]
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return TYPES[_zip_type(fileobj)]
        if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
            return TYPES[_ole_type(fileobj)]
        mime = _magic(head)
        if mime is None:
            mime = _text_type(head)
        return TYPES[mime or "application/octet-stream"]
    finally:
        fileobj.seek(0)


def _magic(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(head[8:12])
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in (
            12, 40, 52, 56, 64, 108, 124):
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _ftyp(head[8:12])
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:4096] else "video/x-matroska"
    if head.startswith(b"OggS"):
        return "video/ogg" if b"\x80theora" in head[:4096] else "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 3 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        if head[1] & 0xF6 == 0xF0:  # ADTS: MPEG sync with layer 00
            return "audio/aac"
        version, layer, bitrate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4
        if version != 1 and layer != 0 and bitrate != 0xF:
            return "audio/mpeg"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/vnd.rar"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    if head.startswith(b"\x7fELF"):
        return "application/x-executable"
    return None


def _ftyp(brand: bytes) -> str:
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return "audio/mp4"
    if brand == b"qt  ":
        return "video/quicktime"
    if brand.startswith(b"3g"):
        return "video/3gpp"
    if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
        return "image/heic"
    if brand in (b"avif", b"avis"):
        return "image/avif"
    return "video/mp4"


_ALLOWED_CONTROLS = {0x09, 0x0A, 0x0C, 0x0D, 0x1B}


def _text_type(head: bytes) -> str | None:
    """text/plain, text/html, image/svg+xml or application/xml for text; None
    for binary content."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, data = ("utf-16-le" if head[:2] == b"\xff\xfe" else "utf-16-be"), head[2:]
    else:
        if any(byte < 0x20 and byte not in _ALLOWED_CONTROLS for byte in head) or b"\x7f" in head:
            return None
        encoding, data = "utf-8", head.removeprefix(b"\xef\xbb\xbf")
    text = None
    for candidate in (encoding, "gb18030") if encoding == "utf-8" else (encoding,):
        try:
            # incremental: a character cut at the end of the head is fine
            text = codecs.getincrementaldecoder(candidate)().decode(data, final=False)
            break
        except UnicodeDecodeError:
            continue
    if text is None or any(ord(c) < 0x20 and ord(c) not in _ALLOWED_CONTROLS for c in text[:4096]):
        return None
    start = text.lstrip()[:1024].lower()
    if start.startswith(("<!doctype html", "<html", "<head", "<body", "<script", "<iframe")):
        return "text/html"
    if start.startswith(("<svg", "<!doctype svg")) or (start.startswith("<?xml") and "<svg" in start):
        return "image/svg+xml"
    if start.startswith("<?xml"):
        return "application/xml"
    return "text/plain"


def _zip_type(fileobj: BinaryIO) -> str:
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
            names = {info.filename for info in infos}
            if infos and infos[0].filename == "mimetype" and infos[0].file_size < 100:
                declared = archive.read(infos[0]).decode("ascii", "replace").strip()
                if declared in TYPES and declared != "application/zip":
                    return declared if TYPES[declared].kind == "document" else "application/zip"
            if "[Content_Types].xml" in names:
                macros = any(name.lower().endswith("vbaproject.bin") for name in names)
                if "word/document.xml" in names:
                    return ("application/vnd.ms-word.document.macroEnabled.12" if macros
                            else f"{OOXML}.wordprocessingml.document")
                if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
                    return ("application/vnd.ms-excel.sheet.macroEnabled.12" if macros
                            else f"{OOXML}.spreadsheetml.sheet")
                if "ppt/presentation.xml" in names:
                    return ("application/vnd.ms-powerpoint.presentation.macroEnabled.12" if macros
                            else f"{OOXML}.presentationml.presentation")
            if "AndroidManifest.xml" in names and "classes.dex" in names:
                return "application/vnd.android.package-archive"
            if "META-INF/MANIFEST.MF" in names:
                return "application/java-archive"
            return "application/zip"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return "application/octet-stream"


def _ole_type(fileobj: BinaryIO) -> str:
    """Legacy Office documents are OLE2 compound files: the names in their
    directory tell Word, Excel and PowerPoint apart."""
    try:
        names = _ole_names(fileobj)
    except (struct.error, ValueError, OSError):
        return "application/x-ole-storage"
    if "WordDocument" in names:
        return "application/msword"
    if "Workbook" in names or "Book" in names:
        return "application/vnd.ms-excel"
    if "PowerPoint Document" in names:
        return "application/vnd.ms-powerpoint"
    return "application/x-ole-storage"


def _ole_names(fileobj: BinaryIO, max_sectors: int = 256) -> set[str]:
    fileobj.seek(0)
    header = fileobj.read(512)
    if len(header) < 512:
        raise ValueError("short OLE header")
    shift = struct.unpack("<H", header[30:32])[0]
    if shift not in (9, 12):
        raise ValueError("bad sector size")
    sector_size = 1 << shift
    first_dir = struct.unpack("<I", header[48:52])[0]
    fat_sectors = list(struct.unpack("<109I", header[76:76 + 109 * 4]))
    per_fat = sector_size // 4

    def read_sector(number: int) -> bytes:
        fileobj.seek((number + 1) * sector_size)
        data = fileobj.read(sector_size)
        if len(data) < sector_size:
            raise ValueError("sector beyond the end of the file")
        return data

    fat_cache: dict[int, tuple[int, ...]] = {}

    def next_sector(number: int) -> int:
        index = number // per_fat
        if index >= len(fat_sectors) or fat_sectors[index] >= 0xFFFFFFFA:
            raise ValueError("FAT sector outside the header's list")
        if index not in fat_cache:
            fat_cache[index] = struct.unpack(f"<{per_fat}I", read_sector(fat_sectors[index]))
        return fat_cache[index][number % per_fat]

    names: set[str] = set()
    sector, seen = first_dir, 0
    while sector < 0xFFFFFFFA and seen < max_sectors:
        data = read_sector(sector)
        for offset in range(0, sector_size, 128):
            entry = data[offset:offset + 128]
            length = struct.unpack("<H", entry[64:66])[0]
            if 2 <= length <= 64:
                names.add(entry[:length - 2].decode("utf-16-le", "replace"))
        sector = next_sector(sector)
        seen += 1
    return names
