"""What a file is, from its first bytes (never from its name)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

HEAD_BYTES = 64 * 1024  # enough for a TIFF's first directory

# "raw" is any other camera RAW: one LibRaw opens (see `decode.probe`), in a TIFF wrapper
# (Pentax PEF, Samsung SRW, Hasselblad 3FR, Kodak DCR/KDC) or a header of its own (IIQ)
RAW_FORMATS = frozenset({"dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "raw"})
# formats whose magic bytes are a TIFF's: LibRaw decides whether they are RAW
TIFF_SHAPED = frozenset({"tiff", "nef", "arw"})
VIPS_FORMATS = frozenset({"jpeg", "png", "webp", "avif", "tiff", "gif"})
SUPPORTED_FORMATS = VIPS_FORMATS | RAW_FORMATS | {"heic"}

MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "heic": "image/heic",
    "tiff": "image/tiff",
    "gif": "image/gif",
    "dng": "image/x-adobe-dng",
    "cr2": "image/x-canon-cr2",
    "cr3": "image/x-canon-cr3",
    "nef": "image/x-nikon-nef",
    "arw": "image/x-sony-arw",
    "raf": "image/x-fuji-raf",
    "orf": "image/x-olympus-orf",
    "rw2": "image/x-panasonic-rw2",
    "raw": "image/x-dcraw",
}

_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_TIFF_MAKERS = {b"NIKON": "nef", b"SONY": "arw"}  # names of TIFF-shaped RAW, by Make
_DNG_VERSION_TAG = 50706
_MAKE_TAG = 271


def sniff(head: bytes) -> str | None:
    """The format named by the file's magic bytes, or None when it is not a supported
    image (text, SVG, PDF and other script-capable formats included)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "raf"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "orf"
    if head[:4] == b"IIU\x00":
        return "rw2"
    if head[4:8] == b"ftyp":
        return _iso_bmff_kind(head)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_kind(head)
    if head[:4] in (b"II+\x00", b"MM\x00+"):  # BigTIFF: 64-bit offsets, as libvips reads
        return "tiff"
    return None


def _iso_bmff_kind(head: bytes) -> str | None:
    box_size = struct.unpack(">I", head[:4])[0]
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(box_size, 256), 4)]
    if b"crx " in brands:
        return "cr3"
    if b"avif" in brands or b"avis" in brands:
        return "avif"
    if any(brand in _HEIC_BRANDS for brand in brands) or b"mif1" in brands:
        return "heic"
    return None


# HEIF item types whose codec libheif here has no decoder for (AVC, JPEG, JPEG 2000, VVC)
UNDECODABLE_HEIF_CODECS = {b"avc1": "AVC", b"jpeg": "JPEG", b"j2k1": "JPEG 2000", b"vvc1": "VVC"}
# the names of other codecs, for messages: libheif may be built without them (the builds in
# pillow-heif 1.9 and pyvips-binary 8.18 lack uncompressed `unci`), and then hides the image
HEIF_CODEC_NAMES = {**UNDECODABLE_HEIF_CODECS, b"unci": "uncompressed (ISO/IEC 23001-17)"}


def heif_primary_codec(head: bytes) -> bytes | None:
    """The item type (`hvc1`, `av01`, `avc1`, `grid`…) of a HEIF file's primary image,
    read from its `meta` box; None when the head does not hold it."""
    meta = _box(head, 0, len(head), b"meta")
    if meta is None:
        return None
    iinf = _box(head, meta[0] + 4, meta[1], b"iinf")  # a full box: version and flags first
    primary = _primary_item(head, meta)
    if primary is None or iinf is None:
        return None
    count_size = 2 if head[iinf[0]] == 0 else 4
    at = iinf[0] + 4 + count_size
    while (infe := _box(head, at, iinf[1], b"infe")) is not None:
        version = head[infe[0]]
        id_size = 2 if version == 2 else 4
        item = int.from_bytes(head[infe[0] + 4 : infe[0] + 4 + id_size], "big")
        kind_at = infe[0] + 4 + id_size + 2  # after the protection index
        if version >= 2 and item == primary:
            return head[kind_at : kind_at + 4]
        at = infe[1]
    return None


HDR_TRANSFERS = {16: "PQ", 18: "HLG"}  # ITU-T H.273 transfer characteristics


def heif_hdr_transfer(head: bytes) -> int | None:
    """The HDR transfer (16, PQ or 18, HLG) a HEIF file's `nclx` colour box declares;
    None for SDR, or when the head does not hold the box."""
    ipco = _item_properties(head)
    if not ipco:
        return None
    at = ipco[0]
    while (colr := _box(head, at, ipco[1], b"colr")) is not None:
        if head[colr[0] : colr[0] + 4] == b"nclx":
            transfer = int.from_bytes(head[colr[0] + 6 : colr[0] + 8], "big")
            return transfer if transfer in HDR_TRANSFERS else None
        at = colr[1]
    return None


AV1_MONOCHROME = 0x10  # in the third byte of the AV1 codec configuration (`av1C`)


def avif_is_monochrome(head: bytes) -> bool:
    """Whether an AVIF's image is coded as luma only (4:0:0)."""
    ipco = _item_properties(head)
    config = ipco and _box(head, ipco[0], ipco[1], b"av1C")
    return bool(config) and len(head) > config[0] + 2 and bool(head[config[0] + 2] & AV1_MONOCHROME)


def avif_selects_operating_point(head: bytes) -> bool:
    """Whether an AVIF chooses which operating point (layers) of its AV1 stream to show, by
    an `a1op` property: libheif ignores it and shows them all."""
    ipco = _item_properties(head)
    return bool(ipco) and _box(head, ipco[0], ipco[1], b"a1op") is not None


def heif_primary_size(head: bytes) -> tuple[int, int] | None:
    """The width and height that the `ispe` property of a HEIF file's primary image (a
    grid's whole size) declares; None when the head does not hold it."""
    meta = _box(head, 0, len(head), b"meta")
    ipco = _item_properties(head)
    iprp = meta and _box(head, meta[0] + 4, meta[1], b"iprp")
    ipma = iprp and _box(head, iprp[0], iprp[1], b"ipma")
    primary = meta and _primary_item(head, meta)
    if not ipco or not ipma or primary is None:
        return None
    properties = list(_boxes(head, *ipco))
    for index in _associated_properties(head, ipma, primary):
        if 0 < index <= len(properties):
            kind, start, end = properties[index - 1]
            if kind == b"ispe" and end - start >= 12:  # a full box: version and flags first
                size = head[start + 4 : start + 12]
                return int.from_bytes(size[:4], "big"), int.from_bytes(size[4:], "big")
    return None


def _primary_item(head: bytes, meta: tuple[int, int]) -> int | None:
    """The item id that the `pitm` box in the `meta` box names as the primary image."""
    pitm = _box(head, meta[0] + 4, meta[1], b"pitm")
    if pitm is None:
        return None
    id_size = 2 if head[pitm[0]] == 0 else 4
    return int.from_bytes(head[pitm[0] + 4 : pitm[0] + 4 + id_size], "big")


def _associated_properties(head: bytes, ipma: tuple[int, int], item: int) -> list[int]:
    """The indices (from 1) into `ipco` of the properties that `ipma` gives `item`."""
    version, flags = head[ipma[0]], head[ipma[0] + 3]
    id_size, index_size = (2 if version == 0 else 4), (2 if flags & 1 else 1)
    index_mask = 0x7FFF if index_size == 2 else 0x7F  # the top bit says "essential"
    at = ipma[0] + 8  # after version, flags and the entry count
    while at + id_size < ipma[1]:
        entry = int.from_bytes(head[at : at + id_size], "big")
        count = head[at + id_size]
        at += id_size + 1
        if entry == item:
            return [
                int.from_bytes(head[i : i + index_size], "big") & index_mask
                for i in range(at, min(at + count * index_size, ipma[1]), index_size)
            ]
        at += count * index_size
    return []


def _item_properties(head: bytes) -> tuple[int, int] | None:
    """Where the item properties (`meta/iprp/ipco`) of a HEIF file lie in its head."""
    meta = _box(head, 0, len(head), b"meta")
    iprp = meta and _box(head, meta[0] + 4, meta[1], b"iprp")
    return (iprp and _box(head, iprp[0], iprp[1], b"ipco")) or None


def _box(data: bytes, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    """The (content start, end) of the first box of type `wanted` among the boxes from
    `start` to `end`; None when it is not there whole."""
    found = (box[1:] for box in _boxes(data, start, end) if box[0] == wanted)
    return next(found, None)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """The type, content start and end of each box from `start` to `end`, in order, up to
    the first that is not there whole."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        header = 8
        if size == 1 and at + 16 <= end:
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size


def _tiff_kind(head: bytes) -> str:
    """Plain TIFF, or one of the RAW formats built on TIFF (DNG, CR2, NEF, ARW). NEF and
    ARW are only a Make's guess (a Nikon film scanner writes plain TIFF); LibRaw checks."""
    if head[8:10] == b"CR":
        return "cr2"
    endian = "<" if head[:2] == b"II" else ">"
    try:
        (ifd_offset,) = struct.unpack(endian + "I", head[4:8])
        (count,) = struct.unpack(endian + "H", head[ifd_offset : ifd_offset + 2])
        make = b""
        for n in range(count):
            entry = head[ifd_offset + 2 + 12 * n : ifd_offset + 14 + 12 * n]
            tag, _type, length, value = struct.unpack(endian + "HHII", entry)
            if tag == _DNG_VERSION_TAG:
                return "dng"
            if tag == _MAKE_TAG:
                make = head[value : value + length] if length > 4 else entry[8 : 8 + length]
    except struct.error:
        return "tiff"  # a directory past the sniffed bytes: let the decoder judge
    for maker, kind in _TIFF_MAKERS.items():
        if make.upper().startswith(maker):
            return kind
    return "tiff"


TAIL_BYTES = 64  # what `reaches_its_end` needs of a file's end

PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: nothing may follow it


def reaches_its_end(kind: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether a file of `kind` ends where its own format says it does, from its first
    HEAD_BYTES, its last TAIL_BYTES and its size: a copy still arriving (or stalled) does
    not. True where nothing cheap can tell (TIFF and the RAWs built on it); False for
    a JPEG with data after its end marker (a phone's motion photo), which only age
    clears."""
    if kind == "jpeg":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")  # some cameras pad with zeros
    if kind == "png":
        return tail.endswith(PNG_END)
    if kind == "gif":
        return tail.endswith(b";")
    if kind == "webp":  # RIFF: the size of what follows its first 8 bytes
        return size >= int.from_bytes(head[4:8], "little") + 8
    if kind in ("heic", "avif", "cr3"):
        return _boxes_fit(head, size)
    return True


def _boxes_fit(head: bytes, size: int) -> bool:
    """Whether no top-level box whose header lies in `head` claims to end past `size`."""
    at = 0
    while at + 8 <= min(len(head), size):
        declared = int.from_bytes(head[at : at + 4], "big")
        if declared == 1 and at + 16 <= len(head):
            declared = int.from_bytes(head[at + 8 : at + 16], "big")
        if declared == 0:  # "to the end of the file"
            return True
        if declared < 8 or at + declared > size:
            return False
        at += declared
    return True
