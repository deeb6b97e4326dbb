"""Pure image operations: files and settings in, results out. No database, no jobs, no
HTTP; safe to call from any process."""

from enlarger.media.decode import Limits, Probe, load, probe, set_threads, whole_decode_pixels
from enlarger.media.media_error import MediaError, MediaErrorCode
from enlarger.media.metadata import Metadata, read_metadata
from enlarger.media.render import (
    Recipe,
    Rendered,
    Rendition,
    encode,
    render,
    shrink,
    thumbhash_of,
)
from enlarger.media.sniff import MIME_TYPES, SUPPORTED_FORMATS, sniff

__all__ = [
    "MIME_TYPES",
    "SUPPORTED_FORMATS",
    "Limits",
    "MediaError",
    "MediaErrorCode",
    "Metadata",
    "Probe",
    "Recipe",
    "Rendered",
    "Rendition",
    "encode",
    "load",
    "probe",
    "read_metadata",
    "render",
    "set_threads",
    "shrink",
    "sniff",
    "thumbhash_of",
    "whole_decode_pixels",
]
