"""Images are decoded, checked and re-encoded before they are stored.

- Pillow must decode the whole image as the type its bytes announce, so a
  file that only starts like a PNG is refused.
- Width, height and pixel count are checked *before* decoding (an
  animation counts every frame), so a small file that would expand to
  gigabytes of pixels -- a decompression bomb -- is refused cheaply.
- The EXIF orientation is applied to the pixels, then the image is saved
  again without EXIF, XMP, comments or other metadata (GPS positions, camera
  serial numbers); only the colour profile and transparency are kept.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import tempfile
import warnings
from typing import Any, BinaryIO

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
#: what survives re-encoding (per-frame timing, transparency, colour)
KEEP_INFO = ("transparency", "duration", "loop", "background", "icc_profile")
MAX_FRAMES = 1000
SPOOL_SIZE = 4 * 1024 * 1024


class ImageRejected(ValueError):
    """The image cannot be accepted; the message says why (for the user)."""


@dataclasses.dataclass
class CleanImage:
    file: BinaryIO  #: the re-encoded image, positioned at 0
    size: int
    width: int
    height: int


def _open(src: BinaryIO, mime: str) -> Image.Image:
    src.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on huge images: both are refusals here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(src, formats=[FORMATS[mime]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("The image has too many pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error):
        raise ImageRejected(f"The file is not a valid {mime.split('/')[1].upper()} image.") from None


def check_dimensions(img: Image.Image, *, max_side: int, max_pixels: int) -> int:
    """The number of frames, once size and pixel count are known to be within
    the limits (:class:`ImageRejected` otherwise)."""
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRejected("The image has no pixels.")
    if width > max_side or height > max_side:
        raise ImageRejected(f"The image is {width}x{height} pixels; at most {max_side} on each side.")
    try:
        frames = int(getattr(img, "n_frames", 1) or 1)
    except (OSError, ValueError, EOFError, SyntaxError):
        raise ImageRejected("The image's frames cannot be read.") from None
    if frames > MAX_FRAMES:
        raise ImageRejected(f"The animation has {frames} frames; at most {MAX_FRAMES}.")
    if width * height * frames > max_pixels:
        raise ImageRejected(f"The image has {width * height * frames} pixels (all frames); at most {max_pixels}.")
    return frames


def _clean_info(img: Image.Image) -> Image.Image:
    img.info = {key: img.info[key] for key in KEEP_INFO if key in img.info}
    return img


def _save_options(fmt: str, img: Image.Image) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if img.info.get("icc_profile"):
        options["icc_profile"] = img.info["icc_profile"]
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 90
    return options


def clean_image(src: BinaryIO, mime: str, *, max_side: int, max_pixels: int, fit: int | None = None
                ) -> CleanImage:
    """Decode ``src`` (a seekable file of type ``mime``), check it, apply its
    orientation, optionally scale it down to fit ``fit`` x ``fit`` pixels
    (animations keep their first frame then), and re-encode it without
    metadata into a spooled temporary file."""
    if mime not in FORMATS:
        raise ImageRejected(f"{mime} images are not accepted.")
    fmt = FORMATS[mime]
    img = _open(src, mime)
    frames = check_dimensions(img, max_side=max_side, max_pixels=max_pixels)
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if frames == 1 or fit:
                img.seek(0)
                img.load()
                still = _clean_info(ImageOps.exif_transpose(img))
                if fit and (still.width > fit or still.height > fit):
                    still.thumbnail((fit, fit), Image.Resampling.LANCZOS)
                if fmt == "JPEG" and still.mode not in ("RGB", "L", "CMYK"):
                    still = still.convert("RGB")
                still.save(out, fmt, **_save_options(fmt, still))
                width, height = still.size
            else:
                sequence = [_clean_info(frame.copy()) for frame in ImageSequence.Iterator(img)]
                durations = [frame.info.get("duration", 100) for frame in sequence]
                first = sequence[0]
                first.save(out, fmt, save_all=True, append_images=sequence[1:], duration=durations,
                           loop=img.info.get("loop", 0), **_save_options(fmt, first))
                width, height = img.size
    except ImageRejected:
        out.close()
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning, struct.error):
        out.close()
        raise ImageRejected(f"The file is not a valid {fmt} image (it could not be decoded).") from None
    size = out.tell()
    out.seek(0)
    return CleanImage(out, size, width, height)


def thumbnail(src: BinaryIO, mime: str, size: int, *, max_side: int, max_pixels: int) -> bytes:
    """A JPEG of at most ``size`` x ``size`` pixels showing the first frame
    of the image in ``src`` (transparent areas on white)."""
    img = _open(src, mime)
    check_dimensions(img, max_side=max_side, max_pixels=max_pixels)
    try:
        img.seek(0)
        img.draft("RGB", (size, size))  # JPEG decodes at a reduced scale: faster, less memory
        img = ImageOps.exif_transpose(img)
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
        if img.mode in ("RGBA", "LA", "P", "PA"):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode != "RGB":
            img = img.convert("RGB")
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        raise ImageRejected("The image could not be decoded.") from None
    return out.getvalue()
