"""Real image files for tests, made with libvips and Pillow (photographic-looking noise,
so encoders behave as on photos)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips
from PIL import Image as PILImage


def photo(width: int = 1200, height: int = 800) -> pyvips.Image:
    """The same pixels on every call (the noise is seeded)."""
    red = (pyvips.Image.perlin(width, height, cell_size=64, seed=1) * 100 + 128).cast("uchar")
    green = (pyvips.Image.perlin(width, height, cell_size=32, seed=2) * 100 + 128).cast("uchar")
    blue = pyvips.Image.worley(width, height, cell_size=48, seed=3).cast("uchar")
    return red.bandjoin([green, blue]).copy(interpretation="srgb")


def jpeg(path: Path, width: int = 1200, height: int = 800, **save: object) -> Path:
    photo(width, height).jpegsave(str(path), Q=90, **save)
    return path


def jpeg_with_exif(path: Path, orientation: int = 1) -> Path:
    """A JPEG from Pillow carrying camera EXIF: make, model, time with offset, GPS."""
    picture = PILImage.frombytes("RGB", (600, 400), photo(600, 400).write_to_memory())
    exif = PILImage.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2026:07:14 18:30:05"
    sub[0x9011] = "+02:00"
    sub[0x8827] = 400
    sub[0x829A] = (1, 250)
    sub[0x829D] = (28, 10)
    sub[0x920A] = (35, 1)
    sub[0xA434] = "RF24-70mm F2.8 L IS USM"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.88)
    gps[3] = "W"
    gps[4] = (2.0, 17.0, 40.2)
    picture.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


@dataclass(frozen=True)
class Shot:
    """What a camera writes of one capture: when (with SubSecTimeOriginal's digits) and
    which body; two bodies of one model count their files the same way."""

    taken: str = "2026:07:14 18:30:05"
    subsec: str | None = None
    serial: str | None = None
    make: str = "Canon"
    model: str = "Canon EOS R5"


def camera_jpeg(path: Path, shot: Shot, width: int = 600, height: int = 400) -> Path:
    """A JPEG as a camera writes it beside its RAW: make, model, serial, capture time."""
    picture = PILImage.frombytes("RGB", (width, height), photo(width, height).write_to_memory())
    exif = PILImage.Exif()
    exif[0x010F] = shot.make
    exif[0x0110] = shot.model
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = shot.taken
    if shot.subsec is not None:
        sub[0x9291] = shot.subsec
    if shot.serial is not None:
        sub[0xA431] = shot.serial
    picture.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def dng(
    path: Path,
    width: int,
    height: int,
    preview: bytes | None = None,
    blank: bool = False,
    shot: Shot | None = None,
) -> Path:
    """A camera RAW file: a 12-bit RGGB Bayer mosaic written by pidng, with camera tags, of
    a scene that is red on the left half and blue on the right, so a demosaic shows which
    side is which.
    With `preview` (JPEG bytes) the file also carries it as the camera's own rendering;
    `blank` gives every sensor pixel 0, as a DNG holding metadata only; `shot` gives the
    camera and capture time (else a test camera at 2026-03-01 09:15:00)."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CFAPattern, DNGVersion, Orientation, PhotometricInterpretation

    white = (1 << 12) - 1
    mosaic = _red_blue_mosaic(width, height, white, blank)
    tags = DNGTags()
    for tag, value in (
        (Tag.ImageWidth, width),
        (Tag.ImageLength, height),
        (Tag.TileWidth, width),
        (Tag.TileLength, height),
        (Tag.Orientation, Orientation.Horizontal),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1),
        (Tag.BitsPerSample, 12),
        (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB),
        (Tag.BlackLevel, 0),
        (Tag.WhiteLevel, white),
        (
            Tag.ColorMatrix1,
            [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]],
        ),
        (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.Make, shot.make if shot else "Enlarger"),
        (Tag.Model, shot.model if shot else "Test DNG"),
        (Tag.EXIFPhotoLensModel, "EF50mm f/1.8 STM"),
        (Tag.ExposureTime, [[1, 125]]),
        (Tag.FNumber, [[56, 10]]),
        (Tag.FocalLength, [[50, 1]]),
        (Tag.DateTimeOriginal, shot.taken if shot else "2026:03:01 09:15:00"),
        (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2),
    ):
        tags.set(tag, value)
    if shot is not None and shot.subsec is not None:
        tags.set(Tag.SubsecTimeOriginal, shot.subsec)
    if shot is not None and shot.serial is not None:
        tags.set(Tag.CameraSerialNumber, shot.serial)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    data = bytes(writer.convert(mosaic))
    path.write_bytes(_chain_jpeg_preview(data, preview) if preview else data)
    return path


def stripped_dng(path: Path, width: int, height: int, size: int = 12_000) -> Path:
    """A RAW as sample sites strip it to its headers: `dng`'s directory declaring a
    `width` x `height` sensor in lossless JPEG, as cameras write DNG, with the sensor data
    cut away and the file padded with zeros to `size` bytes. LibRaw opens it and decodes
    the zeros to noise."""
    import tifffile

    data = dng(path, width, height).read_bytes()
    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        data_at, compression_at = page.dataoffsets[0], page.tags["Compression"].valueoffset
    header = bytearray(data[:data_at])
    struct.pack_into("<H", header, compression_at, 7)  # JPEG (lossless, for a mosaic)
    path.write_bytes(bytes(header).ljust(size, b"\0"))
    return path


def _red_blue_mosaic(width: int, height: int, white: int, blank: bool = False) -> Any:
    """An RGGB Bayer mosaic of a scene red on the left half and blue on the right."""
    import numpy as np

    scene = np.zeros((height, width, 3))
    scene[:, : width // 2] = (0.8, 0.1, 0.1)
    scene[:, width // 2 :] = (0.1, 0.1, 0.8)
    if blank:
        scene[:] = 0
    mosaic = np.empty((height, width), np.uint16)
    for row, col, channel in ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)):
        mosaic[row::2, col::2] = scene[row::2, col::2, channel] * white
    return mosaic


def tiff_wrapped_raw(path: Path, make: str, width: int, height: int) -> Path:
    """A RAW as Pentax, Samsung, Hasselblad and Kodak write them: a TIFF whose first
    directory is a 96 x 64 thumbnail, with the 12-bit sensor mosaic (red left, blue right)
    in a child directory, and the maker's name in Make."""
    import numpy as np
    import tifffile

    thumbnail = np.full((64, 96, 3), 128, np.uint8)
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(thumbnail, photometric="rgb", subifds=1, extratags=[(271, "s", 0, make, True)])
        tiff.write(
            _red_blue_mosaic(width, height, (1 << 12) - 1),
            photometric=32803,  # colour filter array
            extratags=[(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True)],
        )
    return path


def phase_one_raw(path: Path, width: int, height: int) -> Path:
    """A RAW in Phase One's own container (IIQ): "IIII", "Raw" and a directory of sizes
    and offsets, then 16-bit sensor values; no TIFF magic for a sniffer to know."""
    import numpy as np

    sensor = np.random.default_rng(7).integers(500, 4000, (height, width)).astype("<u2")
    directory_at = 16
    tags = [(0x108, width), (0x109, height), (0x10C, width), (0x10D, height), (0x10E, 0)]
    data_at = directory_at + 8 + 16 * (len(tags) + 1)
    tags.append((0x10F, data_at))  # where the sensor data starts
    directory = struct.pack("<II", len(tags), 0) + b"".join(
        struct.pack("<IIII", tag, 1, 4, value) for tag, value in tags
    )
    header = b"IIII\x00waR" + struct.pack("<I", directory_at) + bytes(4)
    path.write_bytes(header + directory + sensor.tobytes())
    return path


def _chain_jpeg_preview(dng: bytes, jpeg: bytes) -> bytes:
    """The DNG with a second IFD after its first: a JPEG preview (NewSubfileType 1), as
    cameras store their own rendering."""
    first_ifd = struct.unpack_from("<I", dng, 4)[0]
    entries = struct.unpack_from("<H", dng, first_ifd)[0]
    next_ifd_pointer = first_ifd + 2 + entries * 12
    size = pyvips.Image.new_from_buffer(jpeg, "")
    out = bytearray(dng) + b"\0" * (len(dng) % 2)
    jpeg_at = len(out)
    out += jpeg + b"\0" * (len(jpeg) % 2)
    preview_ifd = len(out)
    short, long = 3, 4
    fields = [
        (254, long, 1),  # NewSubfileType: a reduced-resolution copy
        (256, long, size.width),
        (257, long, size.height),
        (258, short, 8),  # BitsPerSample
        (259, short, 7),  # Compression: JPEG
        (262, short, 6),  # PhotometricInterpretation: YCbCr
        (273, long, jpeg_at),  # StripOffsets
        (277, short, 3),  # SamplesPerPixel
        (278, long, size.height),  # RowsPerStrip
        (279, long, len(jpeg)),  # StripByteCounts
    ]
    out += struct.pack("<H", len(fields))
    for tag, kind, value in fields:
        packed = struct.pack("<HH", value, 0) if kind == short else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    out += struct.pack("<I", 0)
    struct.pack_into("<I", out, next_ifd_pointer, preview_ifd)
    return bytes(out)


def png_with_late_exif(path: Path, orientation: int, width: int = 300, height: int = 200) -> Path:
    """A PNG, red on its left third, whose EXIF orientation comes in an eXIf chunk after
    the image data (the PNG specification allows it there)."""
    picture = PILImage.new("RGB", (width, height), (40, 40, 200))
    picture.paste((220, 30, 30), (0, 0, width // 3, height))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    picture.save(path, exif=exif.tobytes())
    data = path.read_bytes()
    chunks, at = [], 8
    while at < len(data):
        (size,) = struct.unpack(">I", data[at : at + 4])
        chunks.append(data[at : at + 12 + size])
        at += 12 + size
    late = [c for c in chunks if c[4:8] == b"eXIf"]
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    path.write_bytes(data[:8] + b"".join(rest[:-1] + late + rest[-1:]))
    return path


def tiff_declaring(path: Path, **declared: int) -> Path:
    """A 64 x 64 TIFF of 12-bit RGB in 16 px tiles (of the readers here only tifffile reads
    it) whose directory then claims other values, as a fuzzer changes them: `declared`
    maps tag names (ImageWidth, SamplesPerPixel, TileWidth…) to their new values."""
    import numpy as np
    import tifffile

    pixels = np.zeros((64, 64, 3), np.uint16)
    tifffile.imwrite(path, pixels, bitspersample=12, photometric="rgb", tile=(16, 16))
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tiff:
        tags = tiff.pages.first.tags
        for name, value in declared.items():
            short = tags[name].dtype == tifffile.DATATYPE.SHORT
            struct.pack_into("<H" if short else "<I", data, tags[name].valueoffset, value)
    path.write_bytes(bytes(data))
    return path


TIFF_VARIANTS = (
    "tiled-planar",
    "planar-16-bit",
    "lzma",
    "zstd",
    "cielab",
    "12-bit",
    "32-bit",
    "signed-16-bit",
    "jpeg-2000",
    "child-ifd",
    "multi-page",
    "lzma-cmyk",
    "lzma-16-bit-grey",
    "16-bit-grey",
    "12-bit-grey",
    "16-bit-cmyk",
    "signed-8-bit-grey",
    "halving-child-ifds",
)


def tiff_variant(path: Path, variant: str, width: int = 600, height: int = 400) -> Path:
    """`photo(width, height)` in one of the TIFF layouts scanners, microscopes and
    archives write (`TIFF_VARIANTS`), by tifffile; each must decode to that photo.
    "child-ifd" and "multi-page" put a tenth-size copy first and the photo after it;
    "halving-child-ifds" puts black half- and quarter-size children under the photo."""
    import numpy as np
    import tifffile

    image = photo(width, height)
    rgb = np.ndarray((height, width, 3), np.uint8, image.write_to_memory())
    wide = rgb.astype(np.uint16) * 257
    cmyk = np.ndarray((height, width, 4), np.uint8, image.colourspace("cmyk").write_to_memory())
    grey = np.ndarray((height, width), np.uint16, image.colourspace("grey16").write_to_memory())
    kinds: dict[str, dict[str, Any]] = {
        "tiled-planar": {
            "data": np.moveaxis(rgb, 2, 0),
            "planarconfig": "separate",
            "tile": (64, 64),
        },
        "planar-16-bit": {"data": np.moveaxis(wide, 2, 0), "planarconfig": "separate"},
        "lzma": {"data": rgb, "compression": "lzma"},
        "zstd": {"data": rgb, "compression": "zstd"},
        "12-bit": {"data": wide >> 4, "bitspersample": 12},
        "32-bit": {"data": rgb.astype(np.uint32) * 0x01010101},
        "signed-16-bit": {"data": (wide >> 1).astype(np.int16)},
        "jpeg-2000": {"data": rgb, "compression": "jpeg2000"},
        "lzma-cmyk": {"data": cmyk, "compression": "lzma", "photometric": "separated"},
        "lzma-16-bit-grey": {"data": grey, "compression": "lzma", "photometric": "minisblack"},
        "16-bit-grey": {"data": grey, "photometric": "minisblack"},
        "12-bit-grey": {"data": grey >> 4, "bitspersample": 12, "photometric": "minisblack"},
        "16-bit-cmyk": {"data": cmyk.astype(np.uint16) * 257, "photometric": "separated"},
        "signed-8-bit-grey": {
            "data": ((grey >> 8).astype(np.int16) - 128).astype(np.int8),
            "photometric": "minisblack",
        },
    }
    if variant == "cielab":  # L* scaled to 0-255, a* and b* as signed bytes
        lab = np.ndarray((height, width, 3), np.float32, image.colourspace("lab").write_to_memory())
        stored = np.empty((height, width, 3), np.uint8)
        stored[..., 0] = np.clip(lab[..., 0] * 255 / 100, 0, 255)
        stored[..., 1:] = np.clip(lab[..., 1:], -128, 127).astype(np.int8).view(np.uint8)
        tifffile.imwrite(path, stored, photometric="cielab")
    elif variant in ("child-ifd", "multi-page"):
        small = np.ndarray(
            (height // 10, width // 10, 3), np.uint8, image.resize(0.1).write_to_memory()
        )
        with tifffile.TiffWriter(path) as tiff:
            children = 1 if variant == "child-ifd" else 0
            tiff.write(small, photometric="rgb", subifds=children)
            tiff.write(rgb, photometric="rgb")
    elif variant == "halving-child-ifds":
        with tifffile.TiffWriter(path) as tiff:
            tiff.write(rgb, photometric="rgb", subifds=2)
            for shrink in (2, 4):
                tiff.write(np.zeros((height // shrink, width // shrink, 3), np.uint8))
    else:
        options = {"photometric": "rgb", **kinds[variant]}
        tifffile.imwrite(path, np.ascontiguousarray(options.pop("data")), **options)
    return path


def hdr_heic(path: Path, transfer: int, width: int = 300, height: int = 200) -> Path:
    """`photo` as an HDR phone writes it: 10-bit HEIC, BT.2020 primaries, coded in PQ (16)
    or HLG (18), its white at the 203-nit HDR reference white."""
    import numpy as np
    import pillow_heif

    deep = (_hdr_signal(width, height, transfer) * 65535).astype(np.uint16)
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(width, height), data=deep.tobytes())
    heif.save(
        path,
        quality=95,
        color_primaries=9,
        transfer_characteristics=transfer,
        matrix_coefficients=9,
        full_range_flag=1,
    )
    return path


def hdr_avif(path: Path, transfer: int, width: int = 300, height: int = 200) -> Path:
    """The same as an 8-bit AVIF (Pillow's encoder writes no deeper), its `nclx` box
    then set to BT.2020 primaries and the HDR transfer."""
    import numpy as np

    coded = np.round(_hdr_signal(width, height, transfer) * 255).astype(np.uint8)
    PILImage.fromarray(coded).save(path, "AVIF", quality=100, subsampling="4:4:4")
    data = bytearray(path.read_bytes())
    at = data.index(b"colrnclx") + 8
    data[at : at + 4] = struct.pack(">HH", 9, transfer)  # primaries, transfer
    path.write_bytes(bytes(data))
    return path


def _hdr_signal(width: int, height: int, transfer: int) -> Any:
    """`photo` in BT.2020, coded in PQ (16) or HLG (18), from 0 to 1."""
    import numpy as np

    linear = np.asarray(photo(width, height).colourspace("scrgb").numpy(), np.float64)
    bt709_to_bt2020 = np.array(
        [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
    )
    light = np.clip(linear @ bt709_to_bt2020.T, 0, None)
    if transfer == 16:
        m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
        y = (light * 203 / 10000) ** m1
        signal = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
    else:
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        scene = (light * 203 / 1000) ** (1 / 1.2)
        signal = np.where(
            scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-9)) + c
        )
    return np.clip(signal, 0, 1)


def old_style_jpeg_tiff(path: Path, tiled: bool, width: int = 256, height: int = 256) -> Path:
    """`photo` in a TIFF of the long-deprecated old-style JPEG compression (6), as early
    scanners and cameras wrote it: one JFIF stream as the strip, or a stream per 128 px
    tile. libtiff decodes the strip; the tiled file gives it zero pixels, without error."""
    image = photo(width, height)
    side = 128
    streams = (
        [
            image.crop(x, y, side, side).jpegsave_buffer(Q=90, subsample_mode="on")
            for y in range(0, height, side)
            for x in range(0, width, side)
        ]
        if tiled
        else [image.jpegsave_buffer(Q=90, subsample_mode="on")]
    )
    out = bytearray(8)

    def put(data: bytes) -> int:
        at = len(out)
        out.extend(data + b"\0" * (len(data) % 2))
        return at

    offsets = [put(stream) for stream in streams]
    counts = [len(stream) for stream in streams]
    short, long = 3, 4
    fields: dict[int, tuple[int, int, int]] = {
        256: (long, 1, width),
        257: (long, 1, height),
        258: (short, 3, put(struct.pack("<3H", 8, 8, 8))),  # BitsPerSample
        259: (short, 1, 6),  # Compression: old-style JPEG
        262: (short, 1, 6),  # PhotometricInterpretation: YCbCr
        277: (short, 1, 3),  # SamplesPerPixel
        513: (long, 1, offsets[0]),  # JPEGInterchangeFormat: where the tables are
        514: (long, 1, counts[0]),
    }
    if tiled:
        fields[322] = fields[323] = (long, 1, side)  # TileWidth, TileLength
        fields[324] = (long, len(offsets), put(struct.pack(f"<{len(offsets)}I", *offsets)))
        fields[325] = (long, len(counts), put(struct.pack(f"<{len(counts)}I", *counts)))
    else:
        fields[273] = (long, 1, offsets[0])  # StripOffsets
        fields[278] = (long, 1, height)  # RowsPerStrip
        fields[279] = (long, 1, counts[0])  # StripByteCounts
    directory = len(out)
    out += struct.pack("<H", len(fields))
    for tag, (kind, count, value) in sorted(fields.items()):
        packed = (
            struct.pack("<HH", value, 0)
            if kind == short and count == 1
            else struct.pack("<I", value)
        )
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0)
    out[:8] = b"II*\x00" + struct.pack("<I", directory)
    path.write_bytes(bytes(out))
    return path


def layered_avif(
    path: Path,
    qualities: tuple[int, ...],
    width: int = 300,
    height: int = 200,
    operating_point: int | None = None,
) -> Path:
    """`photo` as a layered (progressive) AVIF: one item whose AV1 stream holds one layer
    per quality, coarsest first, with an `a1lx` box; with `operating_point`, an `a1op` box
    selecting it (0 shows every layer, 1 all but the last). No Python binding writes
    these, so libavif's experimental `extraLayerCount` is set through the libavif that
    Pillow bundles; its `avifEncoder` layout is fixed since 1.0, and checked here before
    use."""
    import ctypes
    import ctypes.util
    import io

    import PIL

    bundled = sorted((Path(PIL.__file__).parent.parent / "pillow.libs").glob("libavif-*.so*"))
    avif = ctypes.CDLL(str(bundled[0]) if bundled else ctypes.util.find_library("avif"))
    for name in ("avifEncoderCreate", "avifDecoderCreate", "avifImageCreateEmpty"):
        getattr(avif, name).restype = ctypes.c_void_p
    avif.avifVersion.restype = ctypes.c_char_p
    assert int(avif.avifVersion().split(b".")[0]) >= 1, "layered encoding needs libavif 1.0"

    class RWData(ctypes.Structure):
        _fields_ = [("data", ctypes.POINTER(ctypes.c_uint8)), ("size", ctypes.c_size_t)]

    source = io.BytesIO()
    picture = PILImage.frombytes("RGB", (width, height), photo(width, height).write_to_memory())
    picture.save(source, "AVIF", quality=100, subsampling="4:4:4")
    data = source.getvalue()
    image = ctypes.c_void_p(avif.avifImageCreateEmpty())
    decoder = ctypes.c_void_p(avif.avifDecoderCreate())
    assert avif.avifDecoderReadMemory(decoder, image, data, ctypes.c_size_t(len(data))) == 0
    encoder = avif.avifEncoderCreate()
    # codecChoice, maxThreads, speed, keyframeInterval, timescale (u64), repetitionCount,
    # extraLayerCount, quality: their defaults say the layout is the one expected.
    settings = (ctypes.c_int32 * 9).from_address(encoder)
    assert list(settings[1:3]) + list(settings[6:9]) == [1, -1, -1, 0, -1]
    settings[7] = len(qualities) - 1
    for quality in qualities:
        settings[8] = quality
        added = avif.avifEncoderAddImage(ctypes.c_void_p(encoder), image, ctypes.c_uint64(1), 0)
        assert added == 0
    written = RWData()
    assert avif.avifEncoderFinish(ctypes.c_void_p(encoder), ctypes.byref(written)) == 0
    made = ctypes.string_at(written.data, written.size)
    path.write_bytes(made if operating_point is None else _with_a1op(made, operating_point))
    avif.avifRWDataFree(ctypes.byref(written))
    avif.avifEncoderDestroy(ctypes.c_void_p(encoder))
    avif.avifDecoderDestroy(decoder)
    avif.avifImageDestroy(image)
    return path


def _with_a1op(avif: bytes, operating_point: int) -> bytes:
    """The AVIF, as libavif writes it (one item, a version 0 `iloc` of 4-byte offsets into
    the `mdat` after the `meta`, a version 0 `ipma`), with an essential `a1op` property."""
    out = bytearray(avif)

    def find(start: int, end: int, kind: bytes) -> tuple[int, int]:
        """The start and size of the first `kind` box from `start` to `end`."""
        while start < end:
            size = int.from_bytes(out[start : start + 4], "big")
            if out[start + 4 : start + 8] == kind:
                return start, size
            start += size
        raise ValueError(f"no {kind!r} box")

    meta = find(0, len(out), b"meta")
    iloc, iprp = (find(meta[0] + 12, sum(meta), kind) for kind in (b"iloc", b"iprp"))
    ipco, ipma = (find(iprp[0] + 8, sum(iprp), kind) for kind in (b"ipco", b"ipma"))
    assert out[ipma[0] + 8 : ipma[0] + 16] == b"\0\0\0\0\0\0\0\1"  # version 0, one item
    assert out[iloc[0] + 8] == 0 and out[iloc[0] + 12 : iloc[0] + 14] == b"\x44\0"
    count, at = 0, ipco[0] + 8
    while at < sum(ipco):
        count, at = count + 1, at + int.from_bytes(out[at : at + 4], "big")
    out[ipma[0] + 18] += 1  # after the item id: its number of properties, then their indices
    out[sum(ipma) : sum(ipma)] = bytes([0x80 | (count + 1)])  # essential, as AVIF requires
    out[sum(ipco) : sum(ipco)] = struct.pack(">I4sB", 9, b"a1op", operating_point)
    for box, grown in ((meta, 10), (iprp, 10), (ipco, 9), ((ipma[0] + 9, ipma[1]), 1)):
        struct.pack_into(">I", out, box[0], box[1] + grown)
    items, at = int.from_bytes(out[iloc[0] + 14 : iloc[0] + 16], "big"), iloc[0] + 16
    for _ in range(items):  # the data moved 10 bytes on
        extents, at = int.from_bytes(out[at + 4 : at + 6], "big"), at + 6
        for _ in range(extents):
            struct.pack_into(">I", out, at, int.from_bytes(out[at : at + 4], "big") + 10)
            at += 8
    return bytes(out)


def heif_declaring(path: Path, width: int, height: int) -> Path:
    """The HEIF or AVIF at `path` with every `ispe` property claiming `width` x `height`:
    the header of a huge image, without its pixels."""
    data = bytearray(path.read_bytes())
    at = data.find(b"ispe")
    while at >= 0:
        struct.pack_into(">II", data, at + 8, width, height)  # after version and flags
        at = data.find(b"ispe", at + 4)
    path.write_bytes(bytes(data))
    return path


def unci_heif(path: Path, width: int = 64, height: int = 48) -> Path:
    """`photo` as an uncompressed HEIF (ISO/IEC 23001-17: an `unci` item), as scientific
    and industrial cameras write it: 8-bit RGB interleaved by pixel. No encoder here
    writes one (libheif's is not built in), so its boxes are put together by hand."""
    pixels = photo(width, height).write_to_memory()

    def box(kind: bytes, body: bytes, version_flags: int | None = None) -> bytes:
        full = b"" if version_flags is None else struct.pack(">I", version_flags)
        return struct.pack(">I", 8 + len(full) + len(body)) + kind + full + body

    ftyp = box(b"ftyp", b"mif1" + bytes(4) + b"mif1heic")
    hdlr = box(b"hdlr", bytes(4) + b"pict" + bytes(12) + b"\0", 0)
    pitm = box(b"pitm", struct.pack(">H", 1), 0)
    iinf = box(b"iinf", struct.pack(">H", 1) + box(b"infe", b"\0\1\0\0unci\0", 2 << 24), 0)
    ispe = box(b"ispe", struct.pack(">II", width, height), 0)
    cmpd = box(b"cmpd", struct.pack(">I3H", 3, 4, 5, 6))  # components: red, green, blue
    depths = b"".join(struct.pack(">HBBB", n, 7, 0, 0) for n in range(3))  # 8-bit unsigned
    # 4:4:4, interleaved by pixel, no blocks; no pixel, row or tile alignment; one tile
    uncc = box(b"uncC", struct.pack(">II", 0, 3) + depths + b"\0\1\0\0" + bytes(20), 0)
    associations = struct.pack(">IHB", 1, 1, 3) + b"\x01\x82\x83"  # uncC and cmpd essential
    iprp = box(b"iprp", box(b"ipco", ispe + cmpd + uncc) + box(b"ipma", associations, 0))

    def meta(data_at: int) -> bytes:
        extent = struct.pack(">HHHHII", 1, 1, 0, 1, data_at, len(pixels))  # item 1, one extent
        return box(b"meta", hdlr + pitm + box(b"iloc", b"\x44\0" + extent, 0) + iinf + iprp, 0)

    data_at = len(ftyp) + len(meta(0)) + 8  # after the `mdat` box's header
    path.write_bytes(ftyp + meta(data_at) + box(b"mdat", pixels))
    return path
