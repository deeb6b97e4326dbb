"""schemathesis against the live server's /openapi.json, on both backends: no generated
request, valid or not (NUL characters included), gets a 5xx. The event stream is left
out: a stream it accepts never ends, so each case would wait out a timeout (30 s of the
run); its parameters are checked in test_events and test_security."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_no_generated_request_gets_a_server_error(live_server: str) -> None:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{live_server}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            "10",
            "--workers",  # one: hypothesis parses lambdas' source with `ast` in each
            "1",  # worker thread, which on CPython 3.11 can fail ("AST constructor recursion
            # depth mismatch", cpython#106905) and ends the run with a Runtime Error
            "--seed",
            "1",
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
    errors = run.stdout[run.stdout.find("ERRORS") :][:3000] if "ERRORS" in run.stdout else ""
    assert run.returncode == 0, errors + summary
    generated = [line for line in summary.splitlines() if " generated, " in line]
    assert generated and "passed" in generated[0], summary
    assert int(generated[0].split()[0]) >= 300, summary
