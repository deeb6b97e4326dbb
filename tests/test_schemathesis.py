"""schemathesis against the live server's /openapi.json, on both backends, in its
coverage, fuzzing and stateful phases (the stateful one follows the document's links:
an upload to its image, a queued job to its page…). No generated request, valid or not
(NUL characters included), gets a 5xx, and every answer is what the document says: its
status, its media type and its body's schema. The checks left out, each with its reason,
are in schemathesis.toml beside this file. The event stream is left out: a stream it
accepts never ends, so each case would wait out a timeout (30 s of the run); its
parameters are checked in test_events and test_security."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.heavy
def test_generated_requests_get_what_the_document_says(live_server: str) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live_server}/openapi.json",
            "--phases",
            "coverage,fuzzing,stateful",
            "--max-examples",
            "10",
            "--workers",  # one: hypothesis parses lambdas' source with `ast` in each
            "1",  # worker thread, which on CPython 3.11 can fail ("AST constructor recursion
            # depth mismatch", cpython#106905) and ends the run with a Runtime Error
            "--seed",
            "1",
            # its default of 10 s is a race on a busy machine: an upload of 500 files,
            # each decoded, once took longer there while five other test processes ran
            "--request-timeout",
            "60",
            "--generation-allow-x00",
            "true",
            "--exclude-path",
            "/api/jobs/stream",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = run.stdout[-3000:]
    failures = run.stdout[run.stdout.find("FAILURES") :][:6000] if "FAILURES" in run.stdout else ""
    errors = run.stdout[run.stdout.find("ERRORS") :][:3000] if "ERRORS" in run.stdout else ""
    assert run.returncode == 0, failures + errors + summary
    generated = [line for line in summary.splitlines() if " generated, " in line]
    assert generated and "passed" in generated[0], summary
    assert int(generated[0].split()[0]) >= 1000, summary
    stateful = run.stdout[run.stdout.find("Stateful (in") :][:300]
    assert "Scenarios:" in stateful and "passed" in stateful, run.stdout[:3000]
