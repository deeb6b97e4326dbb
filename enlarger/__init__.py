"""enlarger: a self-hosted image pipeline."""

from typing import Any


def __getattr__(name: str) -> Any:
    """`enlarger.__version__`, read from the installed package's metadata only when asked
    for: importlib.metadata takes 20 ms, which every command would pay."""
    if name != "__version__":
        raise AttributeError(f"module 'enlarger' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("enlarger")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
