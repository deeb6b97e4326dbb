"""The photo library's API (reference documents 000-002): upload, list, read, change and
delete images, and the signed URLs that serve local blobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from enlarger.api.deps import LibraryDep
from enlarger.api.multipart import read_upload_form
from enlarger.api.schemas.base_models import (
    BINARY,
    ERRORS,
    ErrorAnswer,
    Pagination,
    answer,
    links,
    multipart_body,
)
from enlarger.api.schemas.image_models import (
    FullView,
    Image,
    ImageList,
    ReceivedBlob,
    Uploaded,
    UploadRefused,
    image_of,
    images_of,
)
from enlarger.api.shapes import Offset
from enlarger.library import edits, full_views, image_records, ingest, lookups
from enlarger.library.image_records import ImageStatus
from enlarger.library.library import Library
from enlarger.media import MIME_TYPES, sniff
from enlarger.media.sniff import HEAD_BYTES
from enlarger.storage import LocalBlobStore, StorageError, UrlSigner, check_key

router = APIRouter(responses=ERRORS)

TO_IMAGE = links(
    "image_id",
    "/imageId",
    get_image="The image uploaded (or the one it duplicates)",
    get_full_view="The original at full size",
    delete_image="Delete the image",
)


@router.post(
    "/api/upload",
    status_code=201,
    summary="Upload an image (multipart: file, title, collection)",
    response_model=Uploaded,
    responses={
        201: {"description": "A new image", "links": TO_IMAGE},
        200: {
            "model": Uploaded,
            "description": "These bytes were already in the collection: the same image",
            "links": TO_IMAGE,
        },
        413: {"model": ErrorAnswer, "description": "Over the upload size limit"},
        422: {
            "model": UploadRefused | ErrorAnswer,
            "description": "Not an image enlarger accepts; recorded as FAILED with a code",
        },
    },
    openapi_extra=multipart_body(
        {
            "file": BINARY,
            "title": {"type": "string", "description": "Default: the file's name"},
            "collection": {"type": "string", "description": "A project's name (default)"},
        },
        ["file"],
        "The image, and optionally its title and collection",
    ),
)
async def upload(request: Request, response: Response, library: LibraryDep) -> Uploaded | Response:
    form = await read_upload_form(request, library, "file")
    ingested = await run_in_threadpool(
        ingest.ingest,
        library,
        form.file.received,
        filename=form.file.filename,
        title=form.fields.get("title") or None,
        collection=form.fields.get("collection") or None,
    )
    taken = Uploaded(
        image_id=ingested.image_id,
        status=ingested.status,
        checksum=ingested.checksum,
        size_bytes=ingested.size_bytes,
        uploaded_at=ingested.uploaded_at,
        duplicate=not ingested.created,
    )
    if ingested.status is ImageStatus.FAILED:
        refused = UploadRefused(
            **taken.model_dump(),
            error_code=ingested.error_code,
            error_message=ingested.error_message,
            detail=f"{ingested.error_code}: {ingested.error_message}",
        )
        return answer(refused, status_code=422)
    response.status_code = 201 if ingested.created else 200
    return taken


@router.get("/api/images", summary="List images, newest upload first")
def list_images(
    library: LibraryDep,
    status: Annotated[ImageStatus | None, Query(description="Only images in this state")] = None,
    collection: Annotated[str | None, Query(description="Only this collection")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> ImageList:
    page = lookups.list_images(
        library, status=status, collection=collection, limit=limit, offset=offset
    )
    return ImageList(
        data=images_of(library, page.rows),
        collections=page.collections,
        count=page.count,
        pagination=Pagination.of(page.count, limit, offset, len(page.rows)),
    )


@router.get(
    "/api/images/{image_id}",
    summary="One image, with its derivatives and live jobs",
    operation_id="get_image",
)
def get_image(image_id: str, library: LibraryDep) -> Image:
    return image_of(library, image_records.get_image_row(library, image_id))


@router.get(
    "/api/images/{image_id}/full-view",
    summary="The original at full size as a JPEG (for 100 % views): rendered by a worker",
    operation_id="get_full_view",
    description=(
        "200 with `status: done` and the URL once rendered; otherwise the render is queued "
        "(one per image) and the answer is 202 with `status: rendering` and `Retry-After`: "
        "ask again then. `status: failed` (200) says why the original cannot be rendered."
    ),
    responses={
        202: {"model": FullView, "description": "Rendering; ask again after Retry-After seconds"},
        409: {"model": ErrorAnswer, "description": "The original is not stored yet"},
        429: {
            "model": ErrorAnswer,
            "description": "Too many renders are waiting; ask again after Retry-After",
        },
    },
)
def full_view(image_id: str, library: LibraryDep, response: Response) -> FullView:
    try:
        view = full_views.request(library, image_id)
    except full_views.Busy as busy:
        raise HTTPException(
            429, str(busy), headers={"Retry-After": str(full_views.RETRY_AFTER_S * 5)}
        ) from None
    if view.status == "rendering":
        response.status_code = 202
        response.headers["Retry-After"] = str(full_views.RETRY_AFTER_S)
    url = library.blobs.url(view.key, library.settings.url_expiry_seconds) if view.key else None
    return FullView(
        status=view.status,
        url=url,
        job_id=view.job_id,
        error_code=view.error_code,
        error=view.error,
    )


class ImageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=500)
    collection: str | None = Field(None, min_length=1, max_length=200)


@router.patch("/api/images/{image_id}", summary="Rename an image or move it to a collection")
def update_image(image_id: str, change: ImageChange, library: LibraryDep) -> Image:
    row = edits.update_image(library, image_id, title=change.title, collection=change.collection)
    return image_of(library, row)


@router.delete(
    "/api/images/{image_id}",
    status_code=204,
    summary="Delete an image: its original goes to the collection's trash, derivatives go",
    operation_id="delete_image",
    response_class=Response,
)
def delete_image(image_id: str, library: LibraryDep) -> Response:
    edits.delete_image(library, image_id)
    return Response(status_code=204)


def _served_blobs(library: Library) -> tuple[LocalBlobStore, UrlSigner]:
    blobs = library.blobs
    if not isinstance(blobs, LocalBlobStore) or blobs.signer is None:
        raise HTTPException(404, "blobs are not served by this server")
    return blobs, blobs.signer


# A served blob is data, never a page: even a file that is both a JPEG and an HTML page
# (a polyglot) must not run script on this origin, where the dashboard's cookie lives.
MAX_CACHED_S = 86400
BLOB_HEADERS = {
    "Cache-Control": "private, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def served_type(path: Path) -> str:
    """The type a blob is served as: the image format its bytes are (sniffed as ingest
    sniffs them), never what its name says; anything else is opaque bytes."""
    with path.open("rb") as fh:
        kind = sniff(fh.read(HEAD_BYTES))
    return MIME_TYPES.get(kind or "", "application/octet-stream")


@router.get("/files/{key:path}", include_in_schema=False, response_class=FileResponse)
def serve_file(key: str, expires: int, signature: str, library: LibraryDep) -> FileResponse:
    """A local blob, for whoever holds a signed URL that has not expired. Derivatives are
    shown inline; originals and sidecars are downloads."""
    blobs, signer = _served_blobs(library)
    if not signer.verify(key, expires, signature):
        raise HTTPException(403, "the URL's signature is invalid or it has expired")
    try:
        path = blobs.path(key)
    except StorageError:
        raise HTTPException(404, "no such file") from None
    if not path.is_file():
        raise HTTPException(404, "no such file")
    inline = key.startswith(f"{image_records.DERIVATIVES_FOLDER}/")
    headers = BLOB_HEADERS
    if inline:  # a derivative's URL is the same for a while: let the browser keep it
        cached = max(0, min(expires - int(time.time()), MAX_CACHED_S))
        headers = BLOB_HEADERS | {"Cache-Control": f"private, max-age={cached}"}
    return FileResponse(
        path,
        media_type=served_type(path),
        filename=path.name,
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )


@router.put("/files/{key:path}", include_in_schema=False)
async def receive_file(
    key: str, expires: int, signature: str, request: Request, library: LibraryDep
) -> ReceivedBlob:
    """A local blob written by whoever holds a signed upload URL (an external worker):
    streamed to a temp file under the upload size limit, then moved into place whole."""
    blobs, signer = _served_blobs(library)
    if not signer.verify(key, expires, signature, method="PUT"):
        raise HTTPException(403, "the URL's signature is invalid or it has expired")
    try:
        check_key(key)
    except StorageError as exc:
        raise HTTPException(400, str(exc)) from None
    writer = ingest.UploadWriter(library)
    try:
        async for chunk in request.stream():  # too slow a body: 408 from the server
            writer.write(chunk)
    except BaseException:
        writer.discard()
        raise
    received = writer.finish()
    await run_in_threadpool(blobs.take_file, key, received.path)
    return ReceivedBlob(key=key, size_bytes=received.size_bytes, sha256=received.checksum)
