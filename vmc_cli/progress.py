"""Progress reporting on stderr (rich), or silence for --json / --quiet."""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator


class Reporter:
    """Hands out progress tasks. Backends and the core use ``track``/``task``;
    they never print to stdout."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress = None
        self._started = False

    @contextlib.contextmanager
    def session(self) -> Iterator["Reporter"]:
        if not self.enabled:
            yield self
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        # Started with the first bar, so a command that fails before any work prints its
        # one error line and nothing else (a started display writes a blank line on stop).
        self._progress, self._started = progress, False
        try:
            yield self
        finally:
            if self._started:
                progress.stop()
            self._progress, self._started = None, False

    def task(self, description: str, total: int) -> "Task":
        if self._progress is None:
            return Task(None, None)
        if not self._started:
            self._progress.start()
            self._started = True
        return Task(self._progress, self._progress.add_task(description, total=total, info=""))

    def track(self, iterable: Iterable, description: str, total: int | None = None) -> Iterator:
        items = list(iterable) if total is None else iterable
        task = self.task(description, total if total is not None else len(items))
        for item in items:
            yield item
            task.advance()

    def log(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(message, soft_wrap=True, markup=False, highlight=False)
        elif self.enabled:
            import sys

            print(message, file=sys.stderr)


class Task:
    def __init__(self, progress, task_id):
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self._progress is not None:
            kw = {"info": info} if info is not None else {}
            self._progress.update(self._id, advance=n, **kw)


SILENT = Reporter(enabled=False)
