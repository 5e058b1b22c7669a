"""Output modes: human text, or exactly one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _default(value: Any):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def info(message: str, quiet: bool = False) -> None:
    """A message for a person, on stderr."""
    if not quiet:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(message)


def reporter(as_json: bool, quiet: bool):
    from vmc_cli.progress import Reporter

    return Reporter(enabled=not (as_json or quiet))
