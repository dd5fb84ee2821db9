"""Progress display for long stages (rich on a terminal, nothing with ``--quiet``)."""

import logging
import sys
from contextlib import contextmanager

__all__ = ["Progress"]

log = logging.getLogger(__name__)


class Progress:
    """A thin wrapper over :class:`rich.progress.Progress` that can be switched off.

    Parameters
    ----------
    enabled : bool
        Show bars on standard error; False (``--quiet``, or no terminal) shows nothing.
    """

    def __init__(self, *, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._bars = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bars = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self._bars.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bars is not None:
            self._bars.__exit__(*exc)
            self._bars = None

    @contextmanager
    def task(self, description: str, total: int):
        """Yield an ``advance()`` callable for a stage of ``total`` steps."""
        log.info("%s (%d)", description, total)
        if self._bars is None:
            yield lambda steps=1: None
            return
        task_id = self._bars.add_task(description, total=total)
        try:
            yield lambda steps=1: self._bars.advance(task_id, steps)
        finally:
            self._bars.update(task_id, completed=total)
