"""A module a forkserver imports (preloads) in a test: it says it has started, then holds
the import open until the test lets it go, so a signal can arrive mid-preload."""

import os
import time
from pathlib import Path

STARTED = Path(os.environ["ENLARGER_TEST_PRELOAD_STARTED"])
GO = Path(os.environ["ENLARGER_TEST_PRELOAD_GO"])

STARTED.touch()
deadline = time.monotonic() + 60
while not GO.exists() and time.monotonic() < deadline:
    time.sleep(0.01)
