"""The OpenAPI document describes what the API answers: every operation's success has a
typed body (or says its media type), JSON keys stay the documented camelCase (and
reference 003's snake_case where it has them), multipart uploads document their form,
and the operations that create something link to where it is read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse
from fastapi.routing import APIRoute
from jsonschema import Draft202012Validator

from enlarger.api import admin, events, images, jobs, ops, products, project_routes, web
from enlarger.api.app import create_app
from enlarger.bootstrap import build_services
from enlarger.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOT_JSON = (HTMLResponse, FileResponse, RedirectResponse, StreamingResponse)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(build_services(Settings(data_dir=tmp_path_factory.mktemp("openapi"))))


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def is_typed(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether a schema says what the body is: `{}` and a free-form object do not."""
    schema = resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        return all(is_typed(spec, s) for s in schema.get("anyOf", schema.get("oneOf")))
    if not schema:
        return False
    if schema.get("type") == "object":
        return bool(schema.get("properties"))
    return "type" in schema


def test_every_operation_documents_what_it_answers(spec: dict[str, Any]) -> None:
    found = operations(spec)
    assert len(found) >= 50
    untyped = []
    for method, path, operation in found:
        for status, response in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content")
            if not content or not all(
                is_typed(spec, c.get("schema", {})) for c in content.values()
            ):
                untyped.append(f"{method} {path} {status}")
    assert not untyped, untyped


def test_every_json_route_declares_its_response_model() -> None:
    """Routes of the schema and the few outside it (signed blob uploads) alike."""
    routes = [
        route
        for module in (admin, events, images, jobs, ops, products, project_routes, web)
        for route in module.router.routes
        if isinstance(route, APIRoute)
    ]
    missing = [
        f"{sorted(r.methods)} {r.path}"
        for r in routes
        if r.response_model is None
        and not issubclass(r.response_class, NOT_JSON)
        and r.response_class is not Response  # no body (204), or its own type (/metrics)
        and r.path != "/openapi.json"  # the document itself
    ]
    assert len(routes) > 50
    assert not missing, missing


def test_errors_are_documented_for_every_operation(spec: dict[str, Any]) -> None:
    bare = [f"{m} {p}" for m, p, op in operations(spec) if "default" not in op["responses"]]
    assert not bare, bare
    error = resolve(spec, {"$ref": "#/components/schemas/ErrorAnswer"})
    assert error["required"] == ["detail"]


def properties(spec: dict[str, Any], name: str) -> list[str]:
    schemas = spec["components"]["schemas"]
    schema = schemas.get(f"{name}-Output", schemas.get(name))
    return sorted(schema["properties"])


# The JSON keys clients read (the dashboard's JavaScript, enlarger.client, the reference
# documents' shapes). A change here changes the public API: a camelCase key turned
# snake_case (or the reverse) fails here.
FIELDS = {
    "Image": "cameraMake cameraModel checksum collection errorCode errorMessage format "
    "height id isProcessing isStored metadata mimeType orientation originalFilename "
    "originalPath originalUrl previewPath previewUrl processingJobs sizeBytes sizes "
    "status storedAt takenAt thumbhash thumbnailPath thumbnailUrl title updatedAt "
    "uploadedAt width",
    "CameraMetadata": "aperture cameraMake cameraModel colorProfile exposureTimeSeconds "
    "focalLengthMm gps iso lens takenAt",
    "Derivative": "format height path recipeHash sizeBytes url width",
    "Uploaded": "checksum duplicate imageId sizeBytes status uploadedAt",
    "Job": "archived attempts createdAt errorCode finishedAt id imageId lastError lockedAt "
    "lockedBy maxAttempts payload priority progress runAt status type updatedAt",
    "RetryInfo": "attempts canRetryManually errorCode lastError maxAttempts nextAttemptAt "
    "remainingAttempts willRetry",
    "JobStats": "byType completedLastMinute failedLastMinute lanes paused priorityThreshold "
    "queueLagSeconds",
    "LaneCounts": "PENDING RUNNING",
    "Pagination": "hasMore limit offset total",
    "QueuedJob": "job jobId",
    "Project": "collection createdAt folder options photoCount title",
    "ProjectOptions": "embedXmp picksAs sidecarNames",
    "FileOutcome": "basename duplicate error_code error_message filename image_id role stored_as",
    "Photo": "assist basename files flag jpg_available keep_jpg keep_raw label preview_status "
    "previewUrl rating raw_available sidecar sidecars source takenAt thumbnail_status "
    "thumbnailUrl updated_at",
    "Assist": "bestInBurst blurry bright burst burstSize dark highlightsClipped reasons "
    "shadowsClipped sharpness stopsUnder",
    "PhotoPage": "nextAfter photos total",
    "Committed": "dryRun embedded jobs regenerating sidecars sidecars_refused trashed",
    "MaintenanceReport": "changes dry_run folder jobs recheck settling task",
    "ProductJob": "bgKeys composites compositeKeys concerns confidence costs costUsd "
    "createdAt completedAt cutoutKey cutoutMethod durationS errorCode errorMessage "
    "estimatedSecondsRemaining id imageUrl maskKey mediaIds mode originalKey published "
    "requestedMethod reviewDecision reviewedAt sha256 sku startedAt status "
    "statusDescription theme thumbKeys updatedAt urls",
    "Composite": "height key name thumbKey thumbUrl url width",
    "Cost": "amountUsd at provider stage",
    "ProductStats": "avgDurationS byStatus cutoutFailureRate failureRate failuresByCode "
    "total totalCostUsd",
    "PresignedUrls": "expiresIn getUrl key kind putUrl",
    "ProductCreated": "jobId status",
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_json_keys_are_the_documented_ones(spec: dict[str, Any], name: str) -> None:
    assert properties(spec, name) == sorted(FIELDS[name].split())


def test_keys_left_out_rather_than_null_are_not_required(spec: dict[str, Any]) -> None:
    """`items` (with ?items=false) and a composite's size (an external worker's) are left
    out of the body, not null; every other key is always there."""
    schemas = spec["components"]["schemas"]
    assert "items" not in schemas["JobDetail"]["required"]
    assert {"width", "height"}.isdisjoint(schemas["Composite"]["required"])
    assert set(schemas["Image"]["required"]) == set(schemas["Image"]["properties"])


def multipart(spec: dict[str, Any], path: str) -> dict[str, Any]:
    body = spec["paths"][path]["post"]["requestBody"]
    assert body["required"]
    return body["content"]["multipart/form-data"]["schema"]


def test_uploads_document_their_multipart_form(spec: dict[str, Any]) -> None:
    """What api/multipart.py reads: one `file` part (or many `files`) and text fields."""
    binary = {"type": "string", "format": "binary"}
    upload = multipart(spec, "/api/upload")
    assert upload["properties"]["file"] == binary
    assert upload["required"] == ["file"]
    assert {"title", "collection"} <= set(upload["properties"])
    files = multipart(spec, "/api/projects/{folder}/upload")["properties"]["files"]
    assert files["items"] == binary
    product = multipart(spec, "/api/product-jobs/upload")
    assert product["properties"]["file"] == binary
    assert product["required"] == ["file", "sku"]
    webhook = spec["paths"]["/api/webhooks/images"]["post"]["requestBody"]["content"]
    assert webhook["application/json"]["schema"]["required"] == ["sku", "imageUrl", "sha256"]


def test_what_is_created_links_to_where_it_is_read(spec: dict[str, Any]) -> None:
    ids = {op["operationId"] for _, _, op in operations(spec)}
    expected = {
        ("/api/upload", "201"): "get_image",
        ("/api/upload", "200"): "get_image",
        ("/api/projects", "201"): "get_project",
        ("/api/projects/{folder}/upload", "201"): "get_job",
        ("/api/projects/{folder}/jobs", "202"): "get_job",
        ("/api/projects/{folder}/process", "202"): "get_job",
        ("/api/projects/{folder}/maintenance/{task}", "202"): "get_job",
        ("/api/product-jobs/upload", "201"): "get_product_job",
        ("/api/webhooks/images", "201"): "get_product_job",
    }
    for (path, status), target in expected.items():
        links = spec["paths"][path]["post"]["responses"][status]["links"]
        assert target in {link["operationId"] for link in links.values()}, (path, status)
    for _, _, operation in operations(spec):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids, link


def test_non_json_answers_say_their_media_type(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert "text/event-stream" in paths["/api/jobs/stream"]["get"]["responses"]["200"]["content"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=1.0.0; charset=utf-8"]


# ---- the API guide's examples ----------------------------------------------------------

SECTION = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (\S+)$", re.MULTILINE)
JSON_BLOCK = re.compile(r"^```json\n(.*?)\n```$", re.MULTILINE | re.DOTALL)


def guide_examples() -> list[tuple[str, str, str]]:
    """(method, path, example) for each fenced json block of docs/api.md, under the
    section of the operation whose answer it shows."""
    guide = (DOCS / "api.md").read_text()
    heads = list(SECTION.finditer(guide))
    found = []
    for head, after in zip(heads, [*heads[1:], None], strict=True):
        text = guide[head.end() : after.start() if after else len(guide)]
        found += [(head[1], head[2], block) for block in JSON_BLOCK.findall(text)]
    return found


def partial(schema: Any) -> Any:
    """`schema` for an example that shows some of an answer's keys: none is required,
    but every key shown must be one the answer has, and of its type."""
    if isinstance(schema, list):
        return [partial(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    relaxed = {key: partial(value) for key, value in schema.items() if key != "required"}
    if "properties" in schema and "additionalProperties" not in schema:
        relaxed["additionalProperties"] = False
    return relaxed


def test_the_api_guide_examples_are_answers_the_document_allows(spec: dict[str, Any]) -> None:
    examples = guide_examples()
    assert len(examples) >= 30
    components = partial(spec["components"])
    wrong = []
    for method, path, example in examples:
        responses = spec["paths"][path][method.lower()]["responses"]
        schemas = [
            partial(response["content"]["application/json"]["schema"])
            for status, response in responses.items()
            if status != "default" and "application/json" in response.get("content", {})
        ]
        assert schemas, f"{method} {path}: the guide shows JSON, the document none"
        document = {"anyOf": schemas, "components": components}
        errors = list(Draft202012Validator(document).iter_errors(json.loads(example)))
        if errors:
            best = min(errors, key=lambda e: len(list(e.absolute_path)))
            wrong.append(f"{method} {path}: {best.message[:300]}")
    assert not wrong, "\n".join(wrong)


def test_a_renamed_key_in_an_example_is_found(spec: dict[str, Any]) -> None:
    """The check above is not vacuous: a snake_case key where camelCase is sent fails."""
    schema = partial(spec["paths"]["/api/upload"]["post"]["responses"]["201"]["content"])
    document = {**schema["application/json"]["schema"], "components": partial(spec["components"])}
    assert Draft202012Validator(document).is_valid({"imageId": "a", "sizeBytes": 1})
    assert not Draft202012Validator(document).is_valid({"image_id": "a"})
