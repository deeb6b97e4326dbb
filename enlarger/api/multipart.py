"""Reading `multipart/form-data` uploads as they stream in.

The file part goes straight into the library's `UploadWriter` (temp file + sha256 + size
limit) chunk by chunk, so an upload is never buffered whole in memory or written twice.
Text fields are small and kept in memory, within limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from enlarger.errors import Malformed
from enlarger.library.image_records import Received
from enlarger.library.ingest import UploadWriter
from enlarger.library.library import Library
from enlarger.media import MediaError, MediaErrorCode

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32
MAX_FILES = 500


class MalformedForm(Malformed):
    """The request is not a form enlarger can read; the message says why."""


@dataclass(frozen=True)
class UploadedFile:
    filename: str | None
    received: Received


@dataclass
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def file(self) -> UploadedFile:
        """The one file of a single-file form."""
        return self.files[0]


class _FormReader:
    """python-multipart callbacks that route each part to a field or the file writer."""

    def __init__(self, library: Library, file_field: str, many: bool) -> None:
        self.library = library
        self.file_field = file_field
        self.many = many
        self.form = UploadForm()
        self.writer: UploadWriter | None = None
        self._filename: str | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._in_file = False

    def on_part_begin(self) -> None:
        self._headers = {}
        self._field_name = None
        self._field_value = bytearray()
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedForm("a form part has no Content-Disposition name")
        name = options[b"name"].decode("utf-8", "replace")
        if name == self.file_field:
            if self.form.files and not self.many:
                raise MalformedForm(f"send one {self.file_field!r} per request")
            if len(self.form.files) >= MAX_FILES:
                raise MalformedForm(f"more than {MAX_FILES} files in one request")
            filename = options.get(b"filename")
            self._filename = filename.decode("utf-8", "replace") if filename else None
            self.writer = UploadWriter(self.library)
            self._in_file = True
        else:
            if len(self.form.fields) >= MAX_FIELDS:
                raise MalformedForm(f"more than {MAX_FIELDS} form fields")
            self._field_name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            assert self.writer is not None
            self.writer.write(memoryview(data)[start:end])  # a view: no copy of the chunk
            return
        self._field_value += data[start:end]
        if len(self._field_value) > MAX_FIELD_BYTES:
            raise MalformedForm(f"form field {self._field_name!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._in_file:
            assert self.writer is not None
            self.form.files.append(UploadedFile(self._filename, self.writer.finish()))
            self.writer = None
        elif self._field_name is not None:
            self.form.fields[self._field_name] = self._field_value.decode("utf-8", "replace")

    def discard(self) -> None:
        """Drop every file received so far (the form was refused)."""
        if self.writer is not None:
            self.writer.discard()
        for uploaded in self.form.files:
            uploaded.received.path.unlink(missing_ok=True)


async def read_upload_form(
    request: Request, library: Library, file_field: str, many: bool = False
) -> UploadForm:
    """The form's text fields and its file (or, with `many`, files), already in the temp
    directory and hashed. Raises MalformedForm, or MediaError(TOO_LARGE) as soon as a
    file passes the limit."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise MalformedForm("send the image as multipart/form-data")
    reader = _FormReader(library, file_field, many)
    callbacks = {
        name: getattr(reader, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
        )
    }
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    limit = library.settings.max_form_bytes
    size = 0
    try:
        async for chunk in request.stream():  # too slow a body: 408 from the server
            size += len(chunk)
            if size > limit:
                raise MediaError(
                    MediaErrorCode.TOO_LARGE, f"the request is over the limit of {limit:,} bytes"
                )
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        reader.discard()
        raise MalformedForm(f"the form could not be read: {exc}") from None
    except BaseException:
        reader.discard()
        raise
    if reader.writer is not None or not reader.form.files:
        reader.discard()  # no file, or a file part cut off before its end
        raise MalformedForm(f"the form has no complete {file_field!r} file part")
    return reader.form
