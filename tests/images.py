"""Real image files for tests, made with libvips and Pillow (photographic-looking noise,
so encoders behave as on photos)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pyvips
from PIL import Image as PILImage


def photo(width: int = 1200, height: int = 800) -> pyvips.Image:
    red = (pyvips.Image.perlin(width, height, cell_size=64) * 100 + 128).cast("uchar")
    green = (pyvips.Image.perlin(width, height, cell_size=32) * 100 + 128).cast("uchar")
    blue = pyvips.Image.worley(width, height, cell_size=48).cast("uchar")
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
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.88)
    gps[3] = "W"
    gps[4] = (2.0, 17.0, 40.2)
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
