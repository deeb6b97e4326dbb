"""XMP inside the file, for the tools that read nothing else for JPEG and DNG (Lightroom
Classic, Capture One, Photo Mechanic for JPEG). Only the metadata changes: every byte of
the image data stays where and what it was.

- JPEG: the XMP packet lives in an APP1 segment named by Adobe's namespace; it is
  replaced, or a new one goes after the JFIF/EXIF segments. Every other segment is
  copied as it was.
- DNG (a TIFF): the packet is tag 700 of the first directory. A packet that fits where
  the old one is takes its place; a bigger one is appended to the file and the tag
  pointed at it; when the directory has no such tag, a copy of the directory with it is
  appended and the header pointed at the copy. Nothing else moves, so every offset in
  the file stays true.

Packets are written in the `<?xpacket?>` wrapper with room to grow (XMP's own way), so
the next change usually fits in place and a DNG does not grow with every commit.
"""

from __future__ import annotations

import struct

from enlarger.media.xmp import in_packet

XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
MAX_JPEG_PACKET = 0xFFFF - 2 - len(XMP_SIGNATURE)  # one APP1 segment (no extended XMP)
XMP_TAG = 700
EMBEDDABLE = frozenset({"jpeg", "dng"})


class EmbedError(ValueError):
    """The file cannot take the packet (not the format it says, or the packet too big)."""


def embedded_xmp(data: bytes, kind: str) -> bytes | None:
    """The XMP packet a JPEG or DNG carries, if any."""
    if kind == "jpeg":
        found = _jpeg_xmp_segment(data)
        return None if found is None else data[found[0] + 4 + len(XMP_SIGNATURE) : found[1]]
    if kind == "dng":
        tiff = _Tiff(data)
        entry = tiff.entry(XMP_TAG)
        if entry is None:
            return None
        count, offset = tiff.count_and_offset(entry)
        return data[offset : offset + count] if count > 4 else data[entry + 8 : entry + 8 + count]
    raise EmbedError(f"no XMP goes into a {kind} file here")


def embed_xmp(data: bytes, kind: str, packet: bytes) -> bytes:
    """The file with `packet` (an XMP document) as its XMP, and nothing else changed."""
    if kind == "jpeg":
        return _embed_jpeg(data, in_packet(packet))
    if kind == "dng":
        return _embed_tiff(data, packet)
    raise EmbedError(f"no XMP goes into a {kind} file here")


# ---- JPEG ----------------------------------------------------------------------------------


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment before the image data (SOS)."""
    if data[:2] != b"\xff\xd8":
        raise EmbedError("not a JPEG (no SOI marker)")
    found = []
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise EmbedError(f"not a JPEG segment at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        found.append((marker, at, at + 2 + length))
        if marker == 0xDA:  # start of scan: the image data follows
            return found
        at += 2 + length
    raise EmbedError("a JPEG with no image data")


def _jpeg_xmp_segment(data: bytes) -> tuple[int, int] | None:
    for marker, start, end in _segments(data):
        if marker == 0xE1 and data[start + 4 : start + 4 + len(XMP_SIGNATURE)] == XMP_SIGNATURE:
            return start, end
    return None


def _embed_jpeg(data: bytes, packet: bytes) -> bytes:
    if len(packet) > MAX_JPEG_PACKET:
        raise EmbedError(f"the XMP packet is {len(packet):,} bytes; a JPEG segment takes 65,502")
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_SIGNATURE) + len(packet))
    segment += XMP_SIGNATURE + packet
    existing = _jpeg_xmp_segment(data)
    if existing is not None:
        return data[: existing[0]] + segment + data[existing[1] :]
    at = 2  # after SOI, and after the JFIF and EXIF segments that must come first
    for marker, start, end in _segments(data):
        if marker not in (0xE0, 0xE1) or start != at:
            break
        at = end
    return data[:at] + segment + data[at:]


# ---- DNG (TIFF) ----------------------------------------------------------------------------

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_BYTE = 1  # XMP's type in TIFF (TIFF/XMP spec: BYTE, not UNDEFINED)


class _Tiff:
    """The header and first directory of a classic (not Big) TIFF."""

    def __init__(self, data: bytes) -> None:
        order = data[:2]
        if order not in (b"II", b"MM"):
            raise EmbedError("not a TIFF (no byte order mark)")
        self.data = data
        self.endian = "<" if order == b"II" else ">"
        magic, self.ifd = struct.unpack(self.endian + "HI", data[2:8])
        if magic != 42:
            raise EmbedError("not a classic TIFF (BigTIFF or other)")
        if self.ifd + 2 > len(data):
            raise EmbedError("the first directory lies past the end of the file")
        (self.count,) = struct.unpack(self.endian + "H", data[self.ifd : self.ifd + 2])

    def entries(self) -> list[int]:
        """Where each 12-byte entry of the first directory starts."""
        return [self.ifd + 2 + 12 * n for n in range(self.count)]

    def tag(self, entry: int) -> int:
        return int(struct.unpack(self.endian + "H", self.data[entry : entry + 2])[0])

    def entry(self, tag: int) -> int | None:
        return next((e for e in self.entries() if self.tag(e) == tag), None)

    def count_and_offset(self, entry: int) -> tuple[int, int]:
        kind, count = struct.unpack(self.endian + "HI", self.data[entry + 2 : entry + 8])
        (offset,) = struct.unpack(self.endian + "I", self.data[entry + 8 : entry + 12])
        return count * _TYPE_SIZES.get(kind, 1), offset

    def next_ifd(self) -> bytes:
        at = self.ifd + 2 + 12 * self.count
        return self.data[at : at + 4]


def _embed_tiff(data: bytes, packet: bytes) -> bytes:
    tiff = _Tiff(data)
    existing = tiff.entry(XMP_TAG)
    if existing is not None:
        count, offset = tiff.count_and_offset(existing)
        try:
            fitted = in_packet(packet, count) if count > 4 else None
        except ValueError:
            fitted = None
        if fitted is not None:  # in the old packet's place: the file keeps its size
            out = bytearray(data)
            out[offset : offset + count] = fitted
            out[existing : existing + 12] = struct.pack(
                tiff.endian + "HHII", XMP_TAG, _BYTE, count, offset
            )
            return bytes(out)
    packet = in_packet(packet)
    pad = b"\x00" * (len(data) % 2)  # values start on a word boundary
    packet_at = len(data) + len(pad)
    out = bytearray(data + pad + packet)
    value = struct.pack(tiff.endian + "HHII", XMP_TAG, _BYTE, len(packet), packet_at)
    if existing is not None:
        out[existing : existing + 12] = value
        return bytes(out)
    entries = [data[e : e + 12] for e in tiff.entries()] + [value]
    entries.sort(key=lambda raw: struct.unpack(tiff.endian + "H", raw[:2])[0])
    out += b"\x00" * (len(out) % 2)
    directory_at = len(out)
    out += struct.pack(tiff.endian + "H", len(entries)) + b"".join(entries) + tiff.next_ifd()
    out[4:8] = struct.pack(tiff.endian + "I", directory_at)
    return bytes(out)
