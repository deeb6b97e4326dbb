"""Open an image safely: check it against the limits from its header alone, then decode
it once, already shrunk to the size needed (shrink-on-load), upright and in 8-bit sRGB.

libvips handles JPEG, PNG, WebP, AVIF, TIFF and GIF; pillow-heif handles HEIC (the libvips
wheel has no HEVC decoder); rawpy (LibRaw) handles camera RAW, preferring the embedded
preview when it is large enough, and decides which TIFF-shaped files are RAW (of those
that carry a camera's data). A file libvips refuses but Pillow reads (an AVIF sequence, an
LZMA TIFF) is decoded by Pillow, and a TIFF only tifffile reads (12-bit) by tifffile: both
whole, so limited like HEIC.

One module, though long: every format's path ends in the same limits and the same
upright 8-bit sRGB result, and which fallback runs (Pillow, tifffile) depends on why
libvips refused.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pyvips

from enlarger.media.media_error import MediaError, MediaErrorCode
from enlarger.media.sniff import (
    HEAD_BYTES,
    HEIF_CODEC_NAMES,
    RAW_FORMATS,
    SUPPORTED_FORMATS,
    TIFF_SHAPED,
    UNDECODABLE_HEIF_CODECS,
    avif_is_monochrome,
    avif_selects_operating_point,
    heif_hdr_transfer,
    heif_primary_codec,
    heif_primary_size,
    sniff,
)

pyvips.cache_set_max(0)  # every decode is of a different file: caching only costs memory


def set_threads(count: int) -> None:
    """How many threads libvips may use for one image operation in this process."""
    pyvips.concurrency_set(count)


# HEIC and AVIF cannot shrink on load: libheif decodes every pixel, at about 14 bytes of
# memory per pixel measured (an 8000 x 8000 AVIF took 970 MB), so a tiny file declaring a
# huge image is a memory bomb. Their pixels are limited by the memory a decode may use.
WHOLE_DECODE_FORMATS = frozenset({"heic", "avif"})
WHOLE_DECODE_BYTES_PER_PIXEL = 16
DECODER_BASE_MB = 256  # the process and libraries before the first pixel
JPEG_MAX_SHRINK = 8  # the smallest scale libjpeg decodes at: 1/8


def whole_decode_pixels(memory_mb: int) -> int:
    """The most pixels a HEIC or AVIF may have to decode within `memory_mb` megabytes."""
    return max(0, memory_mb - DECODER_BASE_MB) * 1024 * 1024 // WHOLE_DECODE_BYTES_PER_PIXEL


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 200_000_000
    max_whole_decode_pixels: int = whole_decode_pixels(2048)  # HEIC and AVIF


@dataclass(frozen=True)
class Probe:
    """What the header says. `width`/`height` are as displayed (after orientation)."""

    format: str
    width: int
    height: int
    orientation: int
    size_bytes: int
    fallback: str | None = None  # "pillow" or "tifffile": libvips refused the file
    tiff_page: tuple[str, int] | None = None  # the largest TIFF page: ("page", 2)
    hdr_transfer: int | None = None  # PQ (16) or HLG (18): an HDR HEIC or AVIF


def probe(path: str | Path, limits: Limits) -> Probe:
    """Identify the file and check the limits without decoding the image: headers only,
    LibRaw's word on TIFF-shaped and unknown files, and one pixel of a TIFF (libvips reads
    the headers of TIFFs whose pixels it cannot decode)."""
    size = os.path.getsize(path)
    if size == 0:
        raise MediaError(MediaErrorCode.EMPTY_FILE, "the file is empty")
    if size > limits.max_bytes:
        raise MediaError(
            MediaErrorCode.TOO_LARGE,
            f"the file is {size:,} bytes; the limit is {limits.max_bytes:,}",
        )
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    kind = sniff(head)
    if kind is None or kind in TIFF_SHAPED:
        kind = _libraw_kind(Path(path), kind)
    if kind not in SUPPORTED_FORMATS:
        raise MediaError(
            MediaErrorCode.UNSUPPORTED_FORMAT,
            "not a supported image (JPEG, PNG, WebP, AVIF, HEIC, TIFF, GIF or camera RAW)",
        )
    try:
        codec = heif_primary_codec(head) if kind in ("heic", "avif") else None
        if codec in UNDECODABLE_HEIF_CODECS:
            raise _unsupported_heif(UNDECODABLE_HEIF_CODECS[codec])
        if kind in WHOLE_DECODE_FORMATS and (declared := heif_primary_size(head)) is not None:
            _check_pixels(kind, *declared, whole=True, limits=limits)  # before any decoder
        width, height, orientation, fallback, tiff_page = _header(Path(path), kind, head, limits)
    except MediaError:
        raise
    except Exception as exc:
        raise corrupt_error(kind, exc, path) from exc
    if width <= 0 or height <= 0:
        raise MediaError(MediaErrorCode.CORRUPT_IMAGE, f"the {kind} header has no size")
    _check_pixels(kind, width, height, kind in WHOLE_DECODE_FORMATS or fallback is not None, limits)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    hdr = heif_hdr_transfer(head) if kind in WHOLE_DECODE_FORMATS else None
    return Probe(kind, width, height, orientation, size, fallback, tiff_page, hdr)


def _check_pixels(kind: str, width: int, height: int, whole: bool, limits: Limits) -> None:
    """TOO_MANY_PIXELS past the pixel limit, or, for an image decoded `whole`, past the
    limit of a whole decode."""
    pixels = width * height
    if pixels > limits.max_pixels:
        raise MediaError(
            MediaErrorCode.TOO_MANY_PIXELS,
            f"{width} x {height} is {pixels:,} pixels; the limit is {limits.max_pixels:,}",
        )
    if whole and pixels > limits.max_whole_decode_pixels:
        raise MediaError(
            MediaErrorCode.TOO_MANY_PIXELS,
            f"{width} x {height} is {pixels:,} pixels; this {kind.upper()} is decoded whole, "
            f"and its limit is {limits.max_whole_decode_pixels:,}",
        )


def _unsupported_heif(codec_name: str) -> MediaError:
    """The file may be sound: no decoder here reads its codec, which the message names."""
    return MediaError(
        MediaErrorCode.UNSUPPORTED_FORMAT,
        f"a HEIF file whose image is coded as {codec_name}; "
        "HEVC (HEIC) and AV1 (AVIF) are supported",
    )


def load(path: str | Path, found: Probe, long_side: int, in_memory: bool = True) -> pyvips.Image:
    """Decode once at (about) `long_side` on the long edge, never enlarging: upright,
    8-bit sRGB, alpha kept, first frame of an animation. `in_memory` holds the result in
    memory, so that several outputs may be made from it; otherwise it is a pipeline that
    decodes as its one consumer reads (a decode error then surfaces in that consumer)."""
    try:
        if found.format == "heic":
            image = _load_heic(Path(path), long_side, found.hdr_transfer)
        elif found.hdr_transfer and not found.fallback:  # an HDR AVIF, read at its depth
            deep = pyvips.Image.new_from_file(str(path), fail_on="error")
            image = hdr_to_srgb(_shrunk_deep(deep, long_side), found.hdr_transfer)
        elif found.fallback == "pillow":
            image = _load_pillow(Path(path), long_side, found.orientation)
        elif found.fallback == "tifffile":
            image = _load_tifffile(Path(path), long_side, found.orientation)
        elif found.format in RAW_FORMATS:
            image = _load_raw(Path(path), long_side)
        else:
            image = _load_vips(Path(path), found, long_side)
        image = to_srgb8(image)
        return image.copy_memory() if in_memory else image
    except MediaError:
        raise
    except Exception as exc:
        raise corrupt_error(found.format, exc, path) from exc


def _load_vips(path: Path, found: Probe, long_side: int) -> pyvips.Image:
    page = dict([found.tiff_page] if found.tiff_page else [])
    if found.format == "tiff":  # two kinds `thumbnail` reads wrong
        whole = pyvips.Image.new_from_file(str(path), fail_on="error", **page)
        if _clipped_by_libvips(whole):
            return _shrunk_whole(whole, long_side).autorot()  # it would clip the samples
        if _count(whole, "n-subifds"):  # `thumbnail` takes halving children for a pyramid
            shrunk = whole.thumbnail_image(long_side, height=long_side, size="down")
            return _embedded_profile_to_srgb(shrunk).autorot()
    if found.format == "jpeg":
        image = _jpeg_shrunk_on_load(path, found, long_side)
    else:
        image = pyvips.Image.thumbnail_source(
            pyvips.Source.new_from_file(str(path)),
            long_side,
            height=long_side,
            size="down",
            option_string=",".join(["fail_on=error", *(f"{k}={v}" for k, v in page.items())]),
        )
    image = _embedded_profile_to_srgb(image)
    if found.format == "png" and found.orientation != 1 and not _vips_orientation(path):
        # libvips did not see it; the shrunk image is read in order, a turn reads across it
        image = _turn_upright(image.copy_memory(), found.orientation)
    return image


def _jpeg_shrunk_on_load(path: Path, found: Probe, long_side: int) -> pyvips.Image:
    """A JPEG decoded at the smallest of its 1/2, 1/4 and 1/8 scales that is still at
    least `long_side` (the decoder scales in the DCT: a fraction of a full decode's
    work), then resized like `thumbnail`. `thumbnail` itself keeps a factor of two for
    its resize, so a 24 MP photo made into a 2000 px preview was decoded whole: 1.5x the
    time for a difference under a level per pixel (test_derivative_output). sharp's
    default (fastShrinkOnLoad) makes the same choice."""
    shrink = 1
    while shrink < JPEG_MAX_SHRINK and max(found.width, found.height) >= 2 * shrink * long_side:
        shrink *= 2
    image = pyvips.Image.new_from_file(
        str(path), shrink=shrink, fail_on="error", access="sequential"
    )
    return image.thumbnail_image(long_side, height=long_side, size="down")


def _turn_upright(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """Apply an EXIF orientation libvips did not read itself (see `_png_late_orientation`)."""
    image = image.copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image.autorot()


def _embedded_profile_to_srgb(image: pyvips.Image) -> pyvips.Image:
    """Convert from an embedded colour profile (Display P3, Adobe RGB…) after the shrink.
    Images without one, or tagged sRGB already, are left alone: the transform costs more
    than the whole decode on a 24 MP photo."""
    if not image.get_typeof("icc-profile-data"):
        return image
    icc = image.get("icc-profile-data")
    if b"sRGB" in icc or "sRGB".encode("utf-16-be") in icc:
        return image
    return image.icc_transform("srgb", embedded=True)


# signed integer depths, by their largest value
_SIGNED_FULL_SCALE = {"char": 127, "short": 32767, "int": 2**31 - 1}
# sample formats libvips does not scale into 8 bits itself (it clips them)
_RESCALED = frozenset({*_SIGNED_FULL_SCALE, "uint", "float", "double"})
# colour spaces whose numbers mean a colour whatever their format: converted, never scaled
_COLORIMETRIC = frozenset({"lab", "labs", "lch", "cmc", "xyz", "yxy"})


def to_srgb8(image: pyvips.Image) -> pyvips.Image:
    """Any interpretation and depth (CMYK, CIELAB, 16- or 32-bit, signed, float,
    greyscale) to 8-bit sRGB."""
    if _clipped_by_libvips(image):
        low, high = _sample_range(image)
        scale = 1 / (high - low) if high > low else 0
        if image.interpretation == "scrgb":  # linear light, to 0-1: sRGB's curve comes below
            image = ((image - low) * scale).copy(interpretation="scrgb")
        else:
            colour = "srgb" if image.bands >= 3 else "b-w"
            image = ((image.cast("double") - low) * (255 * scale)).copy(interpretation=colour)
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _clipped_by_libvips(image: pyvips.Image) -> bool:
    """Whether libvips would clip the samples into 8 bits (signed, 32-bit and float ones
    not in a CIE colour space) rather than scale them."""
    return image.format in _RESCALED and image.interpretation not in _COLORIMETRIC


def _sample_range(image: pyvips.Image) -> tuple[float, float]:
    """The sample values shown as black and white: a float image's own lowest and highest
    (its numbers may be anything: -pi to pi, metres); for signed integers the type's range
    when they hold a negative value, else its positive half (unsigned data stored as
    signed); for 32-bit unsigned its range."""
    if image.format in ("float", "double"):
        return image.min(), image.max()
    if image.format == "uint":
        return 0, 2**32 - 1
    top = _SIGNED_FULL_SCALE[image.format]
    return (-top - 1 if image.min() < 0 else 0), top


def _shrunk_whole(image: pyvips.Image, long_side: int) -> pyvips.Image:
    """A whole decoded image at `long_side`, never enlarged: samples `thumbnail` would clip
    (signed, 32-bit, float) are brought into 8 bits by their range first."""
    if _clipped_by_libvips(image):
        image = to_srgb8(image)
    return image.thumbnail_image(long_side, height=long_side, size="down")


# a path in a decoder's message: quoted (bytes too), or bare from the root, ./, ../ or ~/
_PATH_IN_TEXT = re.compile(
    r"""b?(["'])(?:/|\.{1,2}/|~/)[^"'\n]*\1|(?<![\w/.~])(?:/|\.{1,2}/|~/)[^\s"']+"""
)


def corrupt_error(kind: str, exc: Exception, path: str | Path) -> MediaError:
    """A decoder's failure as CORRUPT_IMAGE, with the decoder's last word as the reason.
    Decoders name the file they read; that is a path of the server (a temp file), which
    the message must not show, in whatever form the decoder gives it."""
    message = f"the {kind} file cannot be decoded"
    reason = _decoder_reason(exc)
    if reason is None:
        return MediaError(MediaErrorCode.CORRUPT_IMAGE, message)
    shown = {str(path), os.fspath(Path(path)), os.path.abspath(path), os.path.realpath(path)}
    for form in sorted(map(re.escape, shown), key=len, reverse=True):  # longer ones first
        reason = re.sub(rf"""b?(["']){form}\1|{form}""", "the file", reason)
    name = re.escape(Path(path).name)
    reason = re.sub(rf"""b?(["']){name}\1""", "the file", reason)  # a bare name may be a word
    reason = _PATH_IN_TEXT.sub("the file", reason)
    return MediaError(MediaErrorCode.CORRUPT_IMAGE, f"{message}: {reason}")


def _decoder_reason(exc: Exception) -> str | None:
    """The last line of a decoder's own error; None for Python's errors (an index out of
    range, numpy's MemoryError), which say nothing to a person about the file."""
    own = type(exc).__module__.split(".")[0] in ("rawpy", "tifffile")
    if not (own or isinstance(exc, pyvips.Error | OSError | EOFError | SyntaxError)):
        return None
    said = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else str(exc)  # LibRaw
    lines = (said.decode(errors="replace") if isinstance(said, bytes) else said).splitlines()
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1] if lines else None


def _libraw_kind(path: Path, sniffed: str | None) -> str | None:
    """What a file whose magic bytes say TIFF, or nothing known, is. Camera makers wrap
    their RAW in TIFF (Pentax PEF, Samsung SRW, Hasselblad 3FR, Kodak DCR…) or in headers
    of their own (Phase One IIQ): LibRaw, which knows them all, is asked rather than a
    list of magic bytes. A TIFF it refuses is a plain TIFF, whatever its Make says; so is
    one it opens that carries no camera's data (it opens 16-bit grey and CMYK TIFFs, and
    a Nikon film scanner's TIFF says NIKON)."""
    import rawpy

    try:
        with rawpy.imread(str(path)):
            pass
    except rawpy.LibRawFileUnsupportedError:
        return None if sniffed is None else "tiff"
    except rawpy.LibRawError:  # a short file read past its end: LibRaw did not know it
        return sniffed
    if sniffed in TIFF_SHAPED and not _carries_camera_data(path):  # a Make is only a guess
        return "tiff"
    return sniffed if sniffed in RAW_FORMATS else "raw"


DNG_VERSION_TAG = 50706
MAKE_TAG = 271
BITS_PER_SAMPLE_TAG = 258
CFA_PATTERN_TAG = 33422
CFA_PHOTOMETRIC = 32803  # a colour filter array: the sensor's mosaic
EXIF_IFD_TAG = 34665
# what any TIFF writer may use (none, fax, LZW, JPEG old and new, deflate, PackBits, JPEG
# 2000, LERC, LZMA, Zstandard, WebP, JPEG XL); RAW makers have codes of their own
PLAIN_COMPRESSIONS = frozenset(
    {1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712, 34887, 34925, 50000, 50001, 50002}
)


def _carries_camera_data(path: Path) -> bool:
    """Whether a TIFF says it holds a camera's sensor data: a DNG version in its first
    directory, a colour filter mosaic there or in one of its child directories (where RAW
    wrappers keep it behind a thumbnail), or a maker with what only cameras write: a
    maker note, or image data in a compression of the maker's own. A maker alone says
    nothing: scanners and editors write Make into plain TIFFs."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            first = tiff.pages.first
            if first.tags.valueof(DNG_VERSION_TAG) is not None:
                return True
            pages = (first, *list(first.pages or [])[:TIFF_PAGES_LOOKED_AT])
            if any(CFA_PATTERN_TAG in p.tags or p.photometric == CFA_PHOTOMETRIC for p in pages):
                return True
            if not first.tags.valueof(MAKE_TAG):
                return False
            exif = first.tags.valueof(EXIF_IFD_TAG)
            maker_note = isinstance(exif, dict) and "MakerNote" in exif
            return maker_note or any(int(p.compression) not in PLAIN_COMPRESSIONS for p in pages)
    except Exception:  # a directory tifffile cannot follow (it raises many kinds) says none
        return False


class Header(NamedTuple):
    width: int  # as stored, before orientation
    height: int
    orientation: int
    fallback: str | None = None  # see Probe
    tiff_page: tuple[str, int] | None = None


# No RAW compression puts more sensor pixels in a byte than this (a lossy DNG of a black
# frame comes nearest, at under 100): a file that would have to is a sample stripped of
# its image data, and LibRaw decodes what is left to noise or black
RAW_MOST_PIXELS_PER_BYTE = 256


def _header(path: Path, kind: str, head: bytes, limits: Limits) -> Header:
    if kind == "heic":
        import pillow_heif

        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        if len(heif) == 0:  # libheif hides an image whose codec it was built without
            codec = heif_primary_codec(head)
            if codec is not None and codec in HEIF_CODEC_NAMES:
                raise _unsupported_heif(HEIF_CODEC_NAMES[codec])
            raise MediaError(MediaErrorCode.CORRUPT_IMAGE, "the heic file holds no readable image")
        width, height = heif.size
        return Header(width, height, 1)  # libheif applies the rotation itself
    if kind in RAW_FORMATS:
        import rawpy

        with rawpy.imread(str(path)) as raw:
            sizes = raw.sizes
            size = path.stat().st_size
            if sizes.raw_width * sizes.raw_height > size * RAW_MOST_PIXELS_PER_BYTE:
                raise MediaError(
                    MediaErrorCode.CORRUPT_IMAGE,
                    f"the {kind} file is {size:,} bytes, too few for its "
                    f"{sizes.raw_width} x {sizes.raw_height} sensor: its image data is missing",
                )
            # LibRaw reports the upright size through `flip`; 5 and 6 turn by 90°
            width, height = sizes.width, sizes.height
            return Header(width, height, {0: 1, 3: 3, 5: 8, 6: 6}.get(sizes.flip, 1))
    if _libvips_misreads(path, kind, head):
        if (found := _pillow_header(path)) is None:
            raise MediaError(MediaErrorCode.CORRUPT_IMAGE, f"the {kind} file cannot be read")
        return Header(*found, "pillow")
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
        if kind == "tiff":  # libvips reads headers of TIFFs it cannot decode: try a pixel
            image.crop(0, 0, 1, 1).avg()
    except pyvips.Error:
        if (found := _pillow_header(path)) is not None:  # an AVIF sequence, an LZMA TIFF
            return Header(*found, "pillow")
        if kind == "tiff" and (found := _tifffile_header(path, limits)) is not None:  # 12-bit
            return Header(*found, "tifffile")
        raise
    orientation = _vips_orientation(path, image) or 1
    if kind == "png" and orientation == 1:
        orientation = _png_late_orientation(path)
    if kind == "tiff" and (largest := _largest_tiff_page(path, image)) is not None:
        width, height, page = largest
        return Header(width, height, int(orientation), tiff_page=page)
    return Header(image.width, image.height, int(orientation))


OLD_STYLE_JPEG = 6  # a TIFF Compression value, long deprecated


def _libvips_misreads(path: Path, kind: str, head: bytes) -> bool:
    """Files libvips decodes wrong without an error, which Pillow reads right or refuses:
    a monochrome AVIF (libheif reads a limited-range 16 as 30 and 235 as 218), a layered
    AVIF that selects its layers (libheif ignores `a1op`) and a TIFF in old-style JPEG (a
    tiled one decodes to zero pixels)."""
    if kind == "avif":
        return avif_is_monochrome(head) or avif_selects_operating_point(head)
    if kind != "tiff":
        return False
    import tifffile  # reads the directory wherever it lies (libtiff writes it last)

    try:
        with tifffile.TiffFile(path) as tiff:
            return int(tiff.pages.first.compression) == OLD_STYLE_JPEG
    except (tifffile.TiffFileError, OSError, ValueError):
        return False


def _pillow() -> ModuleType:
    """PIL.Image with its own pixel limit off: enlarger's apply (`_check_pixels`, from the
    header), and Pillow's (a warning past 89 MP, a refusal in its words past 179 MP)
    would refuse TIFFs below `max_pixels`."""
    import PIL.Image

    PIL.Image.MAX_IMAGE_PIXELS = None
    return PIL.Image


def _pillow_header(path: Path) -> tuple[int, int, int] | None:
    """What Pillow reads of a file libvips refused; None when it cannot read it either."""
    try:
        with _pillow().open(path) as picture:
            orientation = picture.getexif().get(ORIENTATION_TAG, 1)
            return picture.width, picture.height, orientation if orientation in range(1, 9) else 1
    except (OSError, ValueError, SyntaxError):
        return None


TIFF_PAGES_LOOKED_AT = 32


def _largest_tiff_page(path: Path, first: pyvips.Image) -> tuple[int, int, tuple[str, int]] | None:
    """The width, height and libvips load option of the largest image in a TIFF that
    holds several: pages, or child directories (SubIFDs) of the `first`, where scanners
    and cameras put the full image behind a small first one. None when it is largest."""
    pages, children = _count(first, "n-pages", 1), _count(first, "n-subifds")
    options = [("page", n) for n in range(1, min(pages, TIFF_PAGES_LOOKED_AT))]
    options += [("subifd", n) for n in range(min(children, TIFF_PAGES_LOOKED_AT))]
    best, best_area = None, first.width * first.height
    for option in options:
        try:
            image = pyvips.Image.new_from_file(str(path), access="sequential", **dict([option]))
        except pyvips.Error:
            continue  # a page libvips cannot read is no candidate
        if image.width * image.height > best_area:
            best, best_area = (image.width, image.height, option), image.width * image.height
    return best


def _count(image: pyvips.Image, field: str, default: int = 0) -> int:
    """A count libvips sets only when a file has it ("n-pages", "n-subifds")."""
    return int(image.get(field)) if image.get_typeof(field) else default


def _tifffile_header(path: Path, limits: Limits) -> tuple[int, int, int] | None:
    """What tifffile reads of a TIFF libvips and Pillow refused (12- or 14-bit samples,
    JPEG 2000 or JPEG XL tiles); None when it cannot read it either. tifffile allocates
    every declared sample at once, so what the header declares is held to the memory of a
    whole decode first: a fuzzed header asks for terabytes."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages.first
            if page.imagewidth <= 0 or page.imagelength <= 0 or page.dtype is None:
                return None  # libvips' own complaint says more
            _check_declared_bytes(page, limits)
            orientation = page.tags.valueof(ORIENTATION_TAG, 1)
            return (
                page.imagewidth,
                page.imagelength,
                orientation if orientation in range(1, 9) else 1,
            )
    except (tifffile.TiffFileError, OSError, ValueError):
        return None


def _check_declared_bytes(page: Any, limits: Limits) -> None:
    """TOO_MANY_PIXELS when a tifffile page's samples (width x height x depth x samples x
    bytes) pass the memory of a whole decode; CORRUPT_IMAGE when one of its tiles or strips
    alone does, as no image it holds could need."""
    budget = limits.max_whole_decode_pixels * WHOLE_DECODE_BYTES_PER_PIXEL
    if page.nbytes > budget:
        raise MediaError(
            MediaErrorCode.TOO_MANY_PIXELS,
            f"{page.imagewidth} x {page.imagelength} with {page.samplesperpixel} samples of "
            f"{page.bitspersample} bits is {page.nbytes:,} bytes decoded whole; "
            f"the limit is {budget:,}",
        )
    if math.prod(page.chunks) * page.dtype.itemsize > budget:  # samples included
        raise MediaError(
            MediaErrorCode.CORRUPT_IMAGE, "the tiff file declares tiles larger than its image"
        )


def _vips_orientation(path: str | Path, image: pyvips.Image | None = None) -> int | None:
    """The orientation libvips reads from the file's header (it turns images by it)."""
    if image is None:
        image = pyvips.Image.new_from_file(str(path), access="sequential")
    return int(image.get("orientation")) if image.get_typeof("orientation") else None


PNG_CHUNKS_START = 8  # after the signature
ORIENTATION_TAG = 0x0112


def _png_late_orientation(path: Path) -> int:
    """The orientation in an eXIf chunk that comes after the image data, where the PNG
    specification allows it and libvips does not look; 1 when there is none."""
    import PIL.Image

    with path.open("rb") as fh:
        fh.seek(PNG_CHUNKS_START)
        while header := fh.read(8):
            if len(header) < 8:
                break
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"IEND":
                break
            if kind != b"eXIf":
                fh.seek(size + 4, os.SEEK_CUR)  # the data and its CRC
                continue
            exif = PIL.Image.Exif()
            exif.load(fh.read(size))
            value = exif.get(ORIENTATION_TAG, 1)
            return value if value in range(1, 9) else 1
    return 1


def _load_heic(path: Path, long_side: int, hdr_transfer: int | None) -> pyvips.Image:
    import numpy as np
    import pillow_heif

    heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=hdr_transfer is None)
    if hdr_transfer is None:
        return _from_pillow(heif.to_pillow(), heif.info.get("icc_profile"), long_side)
    deep = pyvips.Image.new_from_array(np.asarray(heif), interpretation="rgb16")
    return hdr_to_srgb(_shrunk_deep(deep, long_side), hdr_transfer)


def _shrunk_deep(image: pyvips.Image, long_side: int) -> pyvips.Image:
    """Shrunk to `long_side`, never enlarged, keeping 16 bits (`thumbnail_image` would
    bring it to 8-bit sRGB, as if it were SDR)."""
    scale = long_side / max(image.width, image.height)
    return image.resize(scale) if scale < 1 else image


# BT.2020 to BT.709 (sRGB) primaries, on linear light (ITU-R BT.2087)
_BT2020_TO_BT709 = [
    [1.6605, -0.5876, -0.0728],
    [-0.1246, 1.1329, -0.0083],
    [-0.0182, -0.1006, 1.1187],
]
SDR_WHITE_NITS = 203  # ITU-R BT.2408: HDR reference white, shown as SDR white
HLG_PEAK_NITS = 1000
TONE_KNEE = 0.75  # below this (of SDR white) light is kept as it is


def hdr_to_srgb(image: pyvips.Image, transfer: int) -> pyvips.Image:
    """A BT.2020 image (16-bit, or 8) coded in PQ (16) or HLG (18) as 8-bit sRGB: decoded to
    light, HDR reference white put at SDR white, highlights rolled off smoothly instead
    of clipped, and the wider gamut mapped in. Shown as stored, it looks washed out."""
    import numpy as np

    colour = image.extract_band(0, n=3) if image.bands > 3 else image
    signal = np.asarray(colour.numpy(), np.float64) / (65535 if colour.format == "ushort" else 255)
    if transfer == 16:  # SMPTE ST 2084: absolute, 1.0 is 10,000 nits
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        power = signal ** (1 / m2)
        nits = 10000 * (np.maximum(power - c1, 0) / (c2 - c3 * power)) ** (1 / m1)
    else:  # ARIB STD-B67 (HLG): scene light, shown on a 1,000-nit display
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        scene = np.where(signal <= 0.5, signal**2 / 3, (np.exp((signal - c) / a) + b) / 12)
        nits = HLG_PEAK_NITS * scene**1.2
    light = np.clip(nits / SDR_WHITE_NITS @ np.array(_BT2020_TO_BT709).T, 0, None)
    over = np.maximum(light - TONE_KNEE, 0) / (1 - TONE_KNEE)
    light = np.where(light > TONE_KNEE, TONE_KNEE + (1 - TONE_KNEE) * over / (1 + over), light)
    linear = pyvips.Image.new_from_array(light.astype(np.float32), interpretation="scrgb")
    return linear.colourspace("srgb").cast("uchar")


def _load_pillow(path: Path, long_side: int, orientation: int) -> pyvips.Image:
    """The first frame (an AVIF sequence's primary image) of a file only Pillow reads."""
    with _pillow().open(path) as picture:
        picture.seek(0)
        image = _from_pillow(picture, picture.info.get("icc_profile"), long_side)
    return _turn_upright(image, orientation) if orientation != 1 else image


def _load_tifffile(path: Path, long_side: int, orientation: int) -> pyvips.Image:
    """The first page of a TIFF only tifffile reads, its samples scaled from their stored
    bits (12, say) to the full range of the 16 bits they are held in."""
    import numpy as np
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        pixels = page.asarray()
        if page.axes.startswith("S"):  # planes stored one after another
            pixels = np.moveaxis(pixels, 0, -1)
        pixels = _to_full_depth(pixels, page.bitspersample)
    image = pyvips.Image.new_from_array(np.ascontiguousarray(pixels))
    if image.format == "ushort":
        image = image.copy(interpretation="rgb16" if image.bands >= 3 else "grey16")
    elif image.bands >= 3:
        image = image.copy(interpretation="srgb")
    image = _shrunk_whole(image, long_side)
    return _turn_upright(image, orientation) if orientation != 1 else image


def _to_full_depth(pixels: Any, bits: int) -> Any:
    """Unsigned samples stored in fewer `bits` (12, say) than the integers holding them,
    scaled to the full range of those: shown as stored, they are near black."""
    import numpy as np

    if pixels.dtype.kind != "u" or bits >= pixels.dtype.itemsize * 8:
        return pixels
    top = np.iinfo(pixels.dtype).max
    return (pixels.astype(np.float64) * (top / ((1 << bits) - 1))).astype(pixels.dtype)


def _from_pillow(picture: Any, icc: bytes | None, long_side: int) -> pyvips.Image:
    """A decoded Pillow image as a libvips one at `long_side`, in sRGB (its depth is
    brought to 8 bits by `to_srgb8`)."""
    image = _shrunk_whole(_pillow_pixels(picture), long_side)
    if not icc:
        return image
    image = image.copy()
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return image.icc_transform("srgb", embedded=True)


def _pillow_pixels(picture: Any) -> pyvips.Image:
    """Pillow's pixels as libvips ones, with their colour space and depth: CIELAB and
    CMYK are converted by colour science, not by Pillow's `convert`, and 16-bit grey
    keeps its range."""
    import numpy as np

    if picture.mode == "LAB":  # as the TIFF stores it: L* scaled to 0-255, a* b* signed
        stored = np.ascontiguousarray(np.asarray(picture))
        lab = np.empty(stored.shape, np.float32)
        lab[..., 0] = stored[..., 0] * (100 / 255)
        lab[..., 1:] = stored[..., 1:].view(np.int8)
        return pyvips.Image.new_from_array(lab, interpretation="lab")
    if picture.mode == "CMYK":
        return pyvips.Image.new_from_array(np.asarray(picture), interpretation="cmyk")
    if picture.mode.startswith("I;16"):
        grey = np.asarray(picture)
        grey = grey.astype(grey.dtype.newbyteorder("="))
        stored = getattr(picture, "tag_v2", {}).get(BITS_PER_SAMPLE_TAG, (16,))  # a TIFF's
        grey = _to_full_depth(grey, stored[0] if isinstance(stored, tuple) else stored)
        return pyvips.Image.new_from_array(grey, interpretation="grey16")
    if picture.mode in ("I", "F"):  # 32-bit signed or float, scaled by `to_srgb8`
        return pyvips.Image.new_from_array(np.asarray(picture))
    if picture.mode not in ("RGB", "RGBA"):
        picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
    return pyvips.Image.new_from_array(np.asarray(picture), interpretation="srgb")


def _load_raw(path: Path, long_side: int) -> pyvips.Image:
    import rawpy

    with rawpy.imread(str(path)) as raw:
        preview = _raw_preview(raw, long_side)
        if preview is not None:
            return preview
        sensor = raw.raw_image_visible
        if sensor.size == 0 or sensor.min() == sensor.max():  # a sensor is never that even
            raise MediaError(
                MediaErrorCode.CORRUPT_IMAGE,
                "the RAW file holds no sensor data: every pixel has the same value",
            )
        half = min(raw.sizes.width, raw.sizes.height) // 2 >= long_side
        rgb: Any = raw.postprocess(use_camera_wb=True, output_bps=8, half_size=half)
    height, width, bands = rgb.shape
    image = pyvips.Image.new_from_memory(rgb.tobytes(), width, height, bands, "uchar")
    return image.thumbnail_image(long_side, height=long_side, size="down")


def _raw_preview(raw: Any, long_side: int) -> pyvips.Image | None:
    """The camera's own JPEG rendering, when it is at least as large as needed."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format != rawpy.ThumbFormat.JPEG:
        return None
    header = pyvips.Image.new_from_buffer(thumb.data, "")
    if max(header.width, header.height) < long_side:
        return None
    image = pyvips.Image.thumbnail_buffer(thumb.data, long_side, height=long_side, size="down")
    turn = {3: "d180", 5: "d270", 6: "d90"}.get(raw.sizes.flip)
    return image.rot(turn) if turn else image
