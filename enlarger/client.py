"""A small Python client for enlarger's HTTP API: the reference's client helpers
(`getImages`, `getAssetUrl`, `getThumbnailUrl`, `getPreviewUrl`, `isImageReady`,
`getImageStatusLabel`, `getJobs`, `getJob`, `pollImageStatus`) for applications.

    with EnlargerClient("http://127.0.0.1:8000") as enlarger:
        uploaded = enlarger.upload_image("IMG_0001.JPG", collection="holiday")
        image = enlarger.poll_image_status(uploaded["imageId"])
        print(enlarger.thumbnail_url(image, 512))

Images and jobs are the API's JSON as dicts, so nothing here needs changing when the
API gains a field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import httpx

Image = dict[str, Any]
Job = dict[str, Any]

STATUS_LABELS = {
    "UPLOADED": "Uploaded",
    "INGESTED": "Waiting to be processed",
    "PROCESSING": "Generating thumbnails and preview",
    "STORED": "Ready",
    "FAILED": "Failed",
}
FINAL_STATUSES = frozenset({"STORED", "FAILED"})
CONNECT_RETRY_PAUSE_S = (0.2, 2.0)  # a server that refuses connections: first pause, longest


class EnlargerError(Exception):
    """The API answered with an error; `detail` is its reason, `body` the whole answer."""

    def __init__(self, status_code: int, detail: str, body: Any) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.body = body


class ImageFailed(Exception):
    """The image reached FAILED; `error_code` says why (e.g. `CORRUPT_IMAGE`)."""

    def __init__(self, image: Image) -> None:
        self.image = image
        self.error_code: str | None = image.get("errorCode")
        reason = f"{self.error_code}: {image.get('errorMessage')}"
        super().__init__(f"image {image.get('id')} failed: {reason}")


def is_image_ready(image: Image) -> bool:
    """True once the original and every derivative are stored."""
    return image.get("status") == "STORED"


def image_status_label(image: Image) -> str:
    """A human label for the image's state, with the reason when it failed."""
    status = image.get("status", "")
    label = STATUS_LABELS.get(status, status.title())
    if status == "FAILED" and image.get("errorCode"):
        return f"{label}: {image['errorCode']}"
    return label


class EnlargerClient:
    """Synchronous client over one `httpx.Client`; use it as a context manager or `close()`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        http: httpx.Client | None = None,
        token: str | None = None,
        outage_wait: float = 120.0,
    ) -> None:
        """`token`: an API token (`enlarger tokens create`), sent as a Bearer header.
        `outage_wait`: for how many seconds a request answered 503 (the server's database
        or storage out for a while) is sent again, after each `Retry-After`, and one the
        server refused to connect (restarting, for an upgrade) is tried again; 0 never."""
        self.base_url = base_url.rstrip("/") + "/"
        self.outage_wait = outage_wait
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> EnlargerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Images

    def upload_image(
        self,
        file: str | Path | bytes | IO[bytes],
        *,
        filename: str | None = None,
        title: str | None = None,
        collection: str | None = None,
    ) -> dict[str, Any]:
        """Upload a file (path, bytes or open binary file): `{imageId, status, checksum, …}`.

        Uploading the same bytes to the same collection again answers the same image
        with `duplicate: true`. A file enlarger refuses raises `EnlargerError` (422) whose
        `body` carries the `errorCode`; the image is still recorded, as FAILED.
        """
        fields = {k: v for k, v in (("title", title), ("collection", collection)) if v is not None}
        if isinstance(file, str | Path):
            path = Path(file)
            with path.open("rb") as handle:
                return self._upload(handle, filename or path.name, fields)
        if isinstance(file, bytes):
            return self._upload(file, filename or "upload", fields)
        return self._upload(file, filename or Path(getattr(file, "name", "upload")).name, fields)

    def _upload(self, content: bytes | IO[bytes], filename: str, fields: dict[str, str]) -> Any:
        rewind: Callable[[], object] | None = None  # how to send the body again after a 503
        if isinstance(content, bytes):
            rewind = lambda: None  # noqa: E731
        elif content.seekable():
            start = content.tell()
            rewind = lambda: content.seek(start)  # noqa: E731
        return self._request(
            "POST",
            "api/upload",
            rewind=rewind,
            files={"file": (filename, content)},
            data=fields,
        )

    def get_images(
        self,
        *,
        status: str | None = None,
        collection: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of images: `{data, collections, count, pagination}`, newest first."""
        params = {"status": status, "collection": collection, "limit": limit, "offset": offset}
        return self._request("GET", "api/images", params=_present(params))

    def iter_images(
        self, *, status: str | None = None, collection: str | None = None, page_size: int = 100
    ) -> Iterator[Image]:
        """Every image matching the filters, fetching page after page as it goes."""
        offset = 0
        while True:
            page = self.get_images(
                status=status, collection=collection, limit=page_size, offset=offset
            )
            yield from page["data"]
            if not page["pagination"]["hasMore"]:
                return
            offset += len(page["data"])

    def get_image(self, image_id: str) -> Image:
        return self._request("GET", f"api/images/{image_id}")

    def update_image(
        self, image_id: str, *, title: str | None = None, collection: str | None = None
    ) -> Image:
        change = _present({"title": title, "collection": collection})
        return self._request("PATCH", f"api/images/{image_id}", json=change)

    def delete_image(self, image_id: str) -> None:
        """The original goes to its collection's trash; derivatives are removed."""
        self._request("DELETE", f"api/images/{image_id}")

    def poll_image_status(
        self,
        image_id: str,
        on_update: Callable[[Image], None] | None = None,
        *,
        interval: float = 1.0,
        timeout: float = 300.0,
    ) -> Image:
        """Poll until the image is STORED and return it; `on_update` sees each state change.

        Raises `ImageFailed` if the image fails and `TimeoutError` after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        last_status = None
        while True:
            image = self.get_image(image_id)
            if image["status"] != last_status:
                last_status = image["status"]
                if on_update is not None:
                    on_update(image)
            if image["status"] == "STORED":
                return image
            if image["status"] == "FAILED":
                raise ImageFailed(image)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"image {image_id} still {last_status} after {timeout} s")
            time.sleep(interval)

    # Asset URLs: local storage answers signed paths on this server, S3 absolute URLs.

    def asset_url(self, image: Image, name: str = "original") -> str | None:
        """An absolute URL for the original or a derivative by recipe name (`preview`,
        `thumb_256`, …); None while it does not exist."""
        if name == "original":
            return self._absolute(image.get("originalUrl"))
        url = image["sizes"].get(name, {}).get("url")
        return self._absolute(url)

    def thumbnail_url(self, image: Image, size: int | None = None) -> str | None:
        """The thumbnail whose long side is nearest `size` (default: the API's choice)."""
        if size is None:
            return self._absolute(image.get("thumbnailUrl"))
        thumbnails = [s for name, s in image["sizes"].items() if name.startswith("thumb_")]
        if not thumbnails:
            return None
        nearest = min(thumbnails, key=lambda s: abs(max(s["width"], s["height"]) - size))
        return self._absolute(nearest["url"])

    def preview_url(self, image: Image) -> str | None:
        return self._absolute(image.get("previewUrl"))

    def download(self, url: str) -> bytes:
        """The bytes behind an asset URL (signed URLs expire: fetch the image again if old)."""
        response = self._http.get(url)
        _raise_for_error(response)
        return response.content

    def _absolute(self, url: str | None) -> str | None:
        return urljoin(self.base_url, url) if url else None

    # Jobs

    def get_jobs(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of jobs: `{jobs, pagination{total, limit, offset, hasMore}}`."""
        params = {"status": status, "type": type, "limit": limit, "offset": offset}
        return self._request("GET", "api/admin/jobs", params=_present(params))

    def get_job(self, job_id: int) -> Job:
        """A job with its lease, retry information and image."""
        return self._request("GET", f"api/admin/jobs/{job_id}")

    def retry_job(self, job_id: int) -> Job:
        return self._request("POST", f"api/admin/jobs/{job_id}/retry")

    def cancel_job(self, job_id: int) -> Job:
        return self._request("POST", f"api/admin/jobs/{job_id}/cancel")

    def _request(
        self, method: str, path: str, rewind: Callable[[], object] | None = None, **kwargs: Any
    ) -> Any:
        """One API call; answered 503 (an outage on the server's side), sent again after
        the answer's Retry-After until `outage_wait` has passed, and tried again as long
        when no connection can be made (nothing was sent: safe whatever the method). A
        body read from a file is sent again only when `rewind` can put the file back where
        it started."""
        deadline = time.monotonic() + self.outage_wait
        unreachable_pause = CONNECT_RETRY_PAUSE_S[0]
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError:
                left = deadline - time.monotonic()
                if left <= 0 or ("files" in kwargs and rewind is None):
                    raise
                time.sleep(min(unreachable_pause, left))
                unreachable_pause = min(unreachable_pause * 2, CONNECT_RETRY_PAUSE_S[1])
                if rewind is not None:
                    rewind()
                continue
            pause = _retry_after(response)
            left = deadline - time.monotonic()
            if pause is None or left <= 0:
                break
            pause = min(pause, left)  # the last try comes at the deadline
            if "files" in kwargs and rewind is None:
                break
            time.sleep(pause)
            if rewind is not None:
                rewind()
        _raise_for_error(response)
        return response.json() if response.content else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before sending a request answered 503 again (None: do not)."""
    if response.status_code != 503:
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "5")))
    except ValueError:  # an HTTP date: rarely sent, a short wait serves as well
        return 5.0


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    raise EnlargerError(response.status_code, str(detail), body)
