"""Access control: tokens kept as hashes, shown once, revocable; every route of the app
refuses a request without a token (401) and with a weaker role (403) once a token
exists, and takes the right role; the open routes stay open; `serve` will not listen
beyond loopback with no token."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from enlarger.access import tokens
from enlarger.access.token_records import read_tokens
from enlarger.access.tokens import Role
from enlarger.api.auth import required_role
from enlarger.bootstrap import Services
from enlarger.cli.tokens_group import terminal_columns
from enlarger.client import EnlargerClient, EnlargerError
from enlarger.db import direct
from enlarger.db.schema import api_tokens
from tests.conftest import PG_ADMIN_DSN
from tests.test_cli import invoke

NEVER_ENDS = {("GET", "/api/jobs/stream")}  # an event stream: refusals only


def _app_routes(services: Services) -> list[tuple[str, str]]:
    """(method, path template) of every API route: those of each router module, checked
    against the app's OpenAPI document so that a router added later cannot be missed."""
    from enlarger.api import (
        admin,
        create_app,
        events,
        images,
        jobs,
        ops,
        products,
        project_routes,
        web,
    )

    routes = {
        (method, route.path)
        for module in (admin, events, images, jobs, ops, products, project_routes, web)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    app = create_app(services)
    routes |= {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert documented <= routes, documented - routes
    return sorted(routes)


def _filled(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


def test_tokens_are_hashed_shown_once_and_revocable(engine: sa.Engine) -> None:
    assert not tokens.any_created(engine)
    record, token = tokens.create(engine, Role.UPLOADER, "camera uploads")
    assert token.startswith("enl_") and len(token) > 40
    assert (record.name, record.role, record.prefix) == (
        "camera uploads",
        Role.UPLOADER,
        token[:12],
    )
    with engine.connect() as conn:
        stored = conn.execute(sa.select(api_tokens.c.token_hash)).scalar_one()
    assert token not in stored and len(stored) == 64
    assert tokens.authenticate(engine, token) is Role.UPLOADER
    assert tokens.list_tokens(engine)[0].last_used_at is not None
    assert tokens.authenticate(engine, token + "x") is None
    assert tokens.authenticate(engine, "not-a-token") is None
    assert tokens.revoke(engine, record.id) and not tokens.revoke(engine, record.id)
    assert tokens.authenticate(engine, token) is None
    assert tokens.any_created(engine)  # revoking every token keeps access control on
    with pytest.raises(ValueError, match="unknown role"):
        Role.named("owner")


def test_every_route_refuses_the_wrong_role(
    client: httpx.Client, services: Services, engine: sa.Engine
) -> None:
    assert client.get("/api/images").status_code == 200  # open: no token exists yet
    issued = {role: tokens.create(engine, role)[1] for role in Role}
    revoked, revoked_token = tokens.create(engine, Role.ADMIN, "old")
    tokens.revoke(engine, revoked.id)
    routes = _app_routes(services)
    assert len(routes) >= 40
    checked = 0
    for method, template in routes:
        path, needed = _filled(template), required_role(method, template)
        bare = client.request(method, path)
        if needed is None:  # open: refused, if at all, by its own check (signature…)
            assert "www-authenticate" not in bare.headers, (method, template, bare.text)
            continue
        assert bare.status_code == 401, (method, template, bare.status_code)
        assert bare.headers["www-authenticate"] == "Bearer"
        stale = client.request(method, path, headers=_bearer(revoked_token))
        assert stale.status_code == 401, (method, template)
        if needed > Role.VIEWER:
            weaker = client.request(method, path, headers=_bearer(issued[Role(needed - 1)]))
            assert weaker.status_code == 403, (method, template, weaker.text)
            assert needed.name.lower() in weaker.json()["detail"]
        if (method, template) not in NEVER_ENDS:
            allowed = client.request(method, path, headers=_bearer(issued[needed]))
            assert allowed.status_code not in (401, 403), (method, template, allowed.text)
        checked += 1
    assert checked >= 35
    malformed = client.get("/api/images", headers={"Authorization": f"Token {issued[Role.ADMIN]}"})
    assert malformed.status_code == 401 and "Bearer" in malformed.json()["detail"]


def test_the_policy_names_the_roles_of_the_issue() -> None:
    assert required_role("GET", "/api/images") is Role.VIEWER
    assert required_role("POST", "/api/upload") is Role.UPLOADER
    assert required_role("PATCH", "/api/projects/{folder}/photos/{basename}") is Role.UPLOADER
    assert required_role("POST", "/api/admin/jobs/{job_id}/retry") is Role.ADMIN
    assert required_role("POST", "/api/product-jobs/{job_id}/segmentation") is Role.ADMIN
    assert required_role("POST", "/api/projects/{folder}/commit-changes") is Role.ADMIN
    assert required_role("POST", "/api/webhooks/images") is None
    assert required_role("GET", "/healthz") is None


def test_token_commands_and_serve_refusing_to_listen_openly(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    code, output = invoke("serve", "--host", "0.0.0.0", *where)
    assert code == 2 and "no API token exists" in output
    code, output = invoke("tokens", "create", "--role", "owner", *where)
    assert code == 2 and "unknown role" in output
    code, output = invoke("tokens", "create", "--role", "admin", "--name", "ops", *where)
    token = output.strip().splitlines()[-1]
    assert code == 0 and token.startswith("enl_")
    code, output = invoke("tokens", "list", *where)
    assert code == 0 and "ops" in output and token[:12] in output and token not in output
    assert invoke("tokens", "revoke", "1", *where)[0] == 0
    code, output = invoke("tokens", "revoke", "1", *where)
    assert code == 2 and "no live token 1" in output


def test_tokens_read_without_sqlalchemy_match_the_engines(engine: sa.Engine, db_url: str) -> None:
    """`enlarger tokens list` reads through a plain DB-API connection (db.direct): the
    same records, timestamps included, as the engine's read on either backend."""
    tokens.create(engine, Role.ADMIN, "ops")
    tokens.create(engine, Role.VIEWER)
    assert tokens.revoke(engine, 2)
    connection = direct.connect_directly(db_url)
    try:
        read_directly = read_tokens(connection)
    finally:
        connection.close()
    assert read_directly == tokens.list_tokens(engine)
    assert [(t.name, t.role, t.revoked_at is None) for t in read_directly] == [
        ("ops", Role.ADMIN, True),
        ("viewer", Role.VIEWER, False),
    ]
    assert all(t.created_at.tzinfo is not None for t in read_directly)


def test_token_commands_refuse_what_would_not_work(tmp_path: Path) -> None:
    """A revoke on a data directory with no database makes none; names that would break
    the list, or not fit, are refused; a database URL enlarger cannot use is named."""
    where = ["--data-dir", str(tmp_path / "data")]
    code, output = invoke("tokens", "revoke", "1", *where)
    assert code == 3 and "no database at" in output
    assert not (tmp_path / "data" / "enlarger.db").exists()
    code, output = invoke("tokens", "create", "--role", "admin", "--name", "a\nb", *where)
    assert code == 2 and "control characters" in output
    code, output = invoke("tokens", "create", "--role", "admin", "--name", "x" * 201, *where)
    assert code == 2 and "at most 200" in output
    code, output = invoke("tokens", "list", "--database-url", "mysql://u@host/db")
    assert code == 2 and "sqlite:///" in output and "postgresql://" in output


def test_tokens_list_as_json_and_in_aligned_columns(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    assert invoke("tokens", "create", "--role", "admin", "--name", "ops team", *where)[0] == 0
    assert invoke("tokens", "create", "--role", "viewer", "--name", "Ævar 📷", *where)[0] == 0
    assert invoke("tokens", "revoke", "2", *where)[0] == 0
    code, output = invoke("tokens", "list", "--json", *where)
    listed = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert code == 0
    assert [(t["id"], t["name"], t["role"]) for t in listed] == [
        (1, "ops team", "admin"),
        (2, "Ævar 📷", "viewer"),
    ]
    assert listed[0]["revokedAt"] is None and listed[1]["revokedAt"].endswith("+00:00")
    code, output = invoke("tokens", "list", *where)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 0 and lines[0].startswith("ID  NAME") and len(lines) == 3
    # the ROLE column starts at the same terminal column on every line (📷 takes two)
    starts = {
        terminal_columns(line[: line.index(role)])
        for line, role in zip(lines, ("ROLE", "admin", "viewer"), strict=True)
    }
    assert len(starts) == 1, output


@pytest.mark.postgres
def test_a_misspelled_postgresql_database_is_refused_at_once(pg_template: str) -> None:
    """Not waited for as if it were an outage (which would last the outage budget)."""
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/enlarger_no_such_database"
    started = time.monotonic()
    code, output = invoke("tokens", "create", "--role", "admin", "--database-url", url)
    assert code == 3 and "does not exist" in output, output
    assert time.monotonic() - started < 60  # not the outage budget's 15 minutes


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_python_client_sends_its_token(live_server: str, engine: sa.Engine) -> None:
    _, viewer = tokens.create(engine, Role.VIEWER)
    with EnlargerClient(live_server, token=viewer) as enlarger:
        assert enlarger.get_images()["count"] == 0
        with pytest.raises(EnlargerError) as refused:
            enlarger.retry_job(1)
        assert refused.value.status_code == 403
    with EnlargerClient(live_server) as anonymous, pytest.raises(EnlargerError) as missing:
        anonymous.get_images()
    assert missing.value.status_code == 401
