"""How long the `enlarger` command takes to start, beside the interpreter's own floor.

Each command runs as a new process, as a person or a script runs it, `--rounds` times;
the median wall time and the peak RSS are reported. The floor is a process that imports
typer and ends: the least a Typer command can cost; a command that reads settings also
imports pydantic-settings and Typer's pydantic adapters (the second floor). The light
commands (`--help`, and `tokens list` on a migrated SQLite database, read without
SQLAlchemy) should stay close to them; the goal is under 0.3 s each on a quiet machine.

    python -m bench.cli_start [--quick] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.common import print_table, verdict

# the command's code, then the process's own peak RSS from /proc (VmHWM starts again at
# exec; ru_maxrss would count the pages of the parent that forked it)
LAUNCHER = """import sys
try:
    {code}
finally:
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM:"))
    print("PEAK", peak.split()[1], file=sys.stderr)
"""
RUN_ENLARGER = "import runpy; runpy.run_module('enlarger', run_name='__main__', alter_sys=True)"


def _run(code: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process running `code` with `args`."""
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", LAUNCHER.format(code=code), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"{code} {' '.join(args)} exited {run.returncode}: {run.stderr}")
    return seconds, int(run.stderr.rsplit("PEAK", 1)[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "ENLARGER_DATA_DIR": data}
        subprocess.run(
            [sys.executable, "-m", "enlarger", "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
        )
        commands = {
            "floor (import typer)": ("import typer", []),
            # what a command that takes options and reads settings cannot go under:
            # Typer converts option values with pydantic, settings are pydantic-settings
            "floor with settings": ("import typer, typer._adapters, pydantic_settings", []),
            "enlarger --help": (RUN_ENLARGER, ["--help"]),
            "enlarger tokens list": (RUN_ENLARGER, ["tokens", "list"]),
        }
        measured: dict[str, tuple[float, float]] = {}
        for name, (code, arguments) in commands.items():
            runs = [_run(code, arguments, env) for _ in range(rounds)]
            measured[name] = (
                statistics.median(s for s, _ in runs),
                max(mb for _, mb in runs),
            )
    floor = measured["floor (import typer)"][0]
    print_table(
        f"command start ({rounds} runs each, median)",
        ["command", "ms", "peak RSS MB", "x floor"],
        [(name, s * 1000, mb, s / floor) for name, (s, mb) in measured.items()],
    )
    verdict(
        help_ms=measured["enlarger --help"][0] * 1000,
        tokens_list_ms=measured["enlarger tokens list"][0] * 1000,
        floor_ms=floor * 1000,
        settings_floor_ms=measured["floor with settings"][0] * 1000,
        help_x_floor=measured["enlarger --help"][0] / floor,
        help_rss_mb=measured["enlarger --help"][1],
    )


if __name__ == "__main__":
    main()
