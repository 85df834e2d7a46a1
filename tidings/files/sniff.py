"""What a file is, from its first bytes: never from what the client says.

PROTOCOL-v2 §3 names the types a client can rely on: PNG, JPEG, GIF and
WebP images; Ogg/Opus, WebM, MP4/AAC, MP3 and WAV audio. Anything else is
``application/octet-stream``. ``HEAD_BYTES`` of the start are enough for
every signature here (MP4's ``ftyp`` box is at offset 4).
"""

from __future__ import annotations

import struct

HEAD_BYTES = 4096  # sniff needs 64; a WAV header with extra chunks more
OCTET_STREAM = "application/octet-stream"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

# MP4 brands of audio-only files (an MP4 with a video brand is still served
# as audio/mp4: the contract has no video kind, and a browser plays its sound).
_MP4_BRANDS = (b"M4A ", b"M4B ", b"mp42", b"mp41", b"isom", b"iso2", b"dash", b"M4V ", b"3gp")


def sniff(head: bytes) -> str:
    """The content type of a file that starts with ``head``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska or WebM
        return "audio/webm" if b"webm" in head[:64] else OCTET_STREAM
    if head[4:8] == b"ftyp" and head[8:12].startswith(_MP4_BRANDS):
        return "audio/mp4"
    if head.startswith(b"ID3") or _mp3_frame(head):
        return "audio/mpeg"
    return OCTET_STREAM


def _mp3_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a layer, a bitrate that is not 'bad'."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 3
    # A random byte pair passes the sync now and then; the reserved values rule most out.
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def wav_duration_ms(head: bytes) -> int | None:
    """A WAV file's length from its header (``fmt `` then ``data``), or None.

    Only what the first bytes say: the ``data`` chunk's size over the byte
    rate. Other audio formats need their whole container read (Ogg's last
    page, an MP4's ``moov``, MP3 frames): their duration is left null.
    """
    if not (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return None
    offset, byte_rate = 12, 0
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
        if chunk == b"fmt " and offset + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, offset + 16)[0]
        elif chunk == b"data":
            if byte_rate <= 0 or size == 0xFFFFFFFF:  # streamed WAV: size unknown
                return None
            return int(size) * 1000 // int(byte_rate)
        offset += 8 + size + (size & 1)
    return None
