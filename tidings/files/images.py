"""Images: their size, and a thumbnail, with Pillow; synchronous (run it in a thread).

A decompression bomb is refused before any pixel is decoded: Pillow's
``open`` reads only the header, and the size it finds is checked against
``MAX_PIXELS`` first (Pillow's own guard, ``Image.MAX_IMAGE_PIXELS``, is
set to the same limit, and its warning or error counts as a refusal too).
An image that does not decode whole (truncated, corrupt) is refused as
well: the contract promises clients that an ``image/*`` file has a size
and a thumbnail.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps

# 64 megapixels: above every phone camera (50 MP is 8160 x 6120), below a
# bomb's billions. A decoded RGBA image of this size is 256 MB, so the
# caller runs few decodes at once.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
THUMBNAIL_SIDE = 320
_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


class ImageRefused(ValueError):
    """Not an image the server keeps: too many pixels, truncated or corrupt."""


@dataclass(frozen=True, slots=True)
class ImageFacts:
    # As the image is shown (EXIF orientation applied), so a client can size
    # its box before the image loads.
    width: int
    height: int
    thumbnail: bytes
    thumbnail_type: str


def examine(source: IO[bytes]) -> ImageFacts:
    """The size of the image in ``source`` and a thumbnail of it (longest side ≤ 320 px)."""
    try:
        with Image.open(source, formats=_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_PIXELS or width <= 0 or height <= 0:
                raise ImageRefused(f"{width} x {height} pixels: more than {MAX_PIXELS}")
            if _turned(image):
                width, height = height, width
            # Decodes every byte (a truncated file fails here), at a reduced
            # scale where the format allows (JPEG's draft mode).
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))
            image.load()
            return _thumbnail(ImageOps.exif_transpose(image), width, height)
    except ImageRefused:
        raise
    # Pillow warns between MAX_PIXELS and twice that (an exception where
    # warnings are errors) and raises above: a refusal either way.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRefused(f"too many pixels: {error}") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
        raise ImageRefused(f"not a whole image: {error}") from None


def _turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the image a quarter (5 to 8)."""
    try:
        return image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # a broken EXIF block is not worth refusing the image for
        return False


def _thumbnail(image: Image.Image, width: int, height: int) -> ImageFacts:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    out = io.BytesIO()
    if small.mode in ("RGBA", "LA", "PA") or "transparency" in small.info:
        small.convert("RGBA").save(out, "PNG", optimize=True)
        kind = "image/png"
    else:
        small.convert("RGB").save(out, "JPEG", quality=80)
        kind = "image/jpeg"
    return ImageFacts(width, height, out.getvalue(), kind)
