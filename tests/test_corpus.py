"""Every file of the generated real-world corpus (`tests/corpus.py`) through
`enlarger import --wait --json`, as a user would bring in a folder."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips

from tests import corpus

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.heavy
def test_the_real_world_corpus_is_imported_right(sqlite_template: Path, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    expected = corpus.build(folder)
    database = tmp_path / "enlarger.db"
    shutil.copyfile(sqlite_template, database)

    done = subprocess.run(
        [
            sys.executable, "-m", "enlarger", "import", str(folder), "--wait", "--json",
            "--data-dir", str(tmp_path / "data"), "--database-url", f"sqlite:///{database}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    results = {Path(line["path"]).name: line for line in map(json.loads, done.stdout.splitlines())}
    assert sorted(results) == sorted(expected)
    wrong = {}
    for name, want in expected.items():
        got = results[name]
        size = None
        if got["status"] == "STORED":
            preview = pyvips.Image.new_from_file(got["derivatives"]["preview"])
            size = (preview.width, preview.height)
            if preview.deviate() < 5:  # a flat preview is a decode that lost the picture
                size = ("flat", size)
        if (got["status"], size, got["error_code"]) != (want.status, want.preview, want.error_code):
            wrong[name] = (got["status"], size, got["error_code"])
    assert wrong == {}
    with sqlite3.connect(database) as db:
        messages = [m for (m,) in db.execute("SELECT error_message FROM images") if m]
        messages += [m for (m,) in db.execute("SELECT last_error FROM jobs") if m]
    assert len(messages) >= 5  # the failed files say why
    assert not [m for m in messages if str(tmp_path) in m]  # and never where they were
