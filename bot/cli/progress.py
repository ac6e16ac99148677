"""Rich progress bars for long commands, on a terminal only: quiet in pipes and with `--log-format json`.

Commands take a `bar(ctx)` context manager and hand its object (a bot.models.Progress) to the
work; without a terminal that object is NO_PROGRESS and nothing at all is drawn, so piped output,
cron mail and JSON log shippers get no control characters.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn, TaskProgressColumn, TextColumn,
    TimeElapsedColumn, TimeRemainingColumn,
)

from bot.cli import err, state
from bot.models import NO_PROGRESS, Progress


class Bars:
    """A bot.models.Progress drawing one rich bar per phase (each `start` finishes the previous one)."""

    def __init__(self, rich: RichProgress) -> None:
        self.rich = rich
        self.task = None

    def start(self, label: str, total: int | None) -> None:
        """A new bar (`total` None: an open-ended count)."""
        if self.task is not None:
            self._finish()
        self.task = self.rich.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        """Move the current bar; a count beyond its total raises the total (rows queued meanwhile)."""
        if self.task is None:
            return
        task = self.rich.tasks[-1]
        if task.total is not None and task.completed + n > task.total:
            self.rich.update(self.task, total=task.completed + n)
        self.rich.advance(self.task, n)

    def _finish(self) -> None:
        task = self.rich.tasks[-1]
        if task.total is None:
            self.rich.update(self.task, total=task.completed)


def enabled(ctx: typer.Context) -> bool:
    """Bars only for a person at a terminal: stderr is a TTY and the logs are text."""
    return err.is_terminal and state(ctx).log_format == "text"


@contextmanager
def bar(ctx: typer.Context) -> Iterator[Progress]:
    """A Progress for the command's work: rich bars on a terminal, NO_PROGRESS otherwise."""
    if not enabled(ctx):
        yield NO_PROGRESS
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    rich = RichProgress(*columns, console=err, transient=False, redirect_stderr=True, redirect_stdout=False)
    bars = Bars(rich)
    original = sys.stderr
    with rich:
        handlers = _log_through(original)
        try:
            yield bars
            if bars.task is not None:
                bars._finish()
        finally:
            for handler, stream in handlers:
                handler.setStream(stream)


def _log_through(original) -> list[tuple[logging.StreamHandler, object]]:
    """Point our log handler writing to stderr at rich's redirected stderr (now sys.stderr), so log
    lines print above the bar instead of through it; returns what to restore."""
    changed = []
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_flashbot", False) and getattr(handler, "stream", None) is original:
            changed.append((handler, handler.setStream(sys.stderr)))
    return changed
