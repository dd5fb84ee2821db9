"""Progress display for long stages: rich bars on a terminal or in Jupyter, nothing with ``--quiet``."""

import importlib.util
import logging
from contextlib import contextmanager

__all__ = ["Progress"]

log = logging.getLogger(__name__)


class Progress:
    """A thin wrapper over :class:`rich.progress.Progress` that can be switched off.

    Bars are drawn on standard error when it is a terminal, and as a live widget in a Jupyter notebook
    (rich draws there through ipywidgets, the ``notebook`` extra); elsewhere (a file, a pipe, a batch job's
    log) only the log says which stage runs.

    Parameters
    ----------
    enabled : bool
        False (``--quiet``, ``quiet=True``) shows nothing.
    """

    def __init__(self, *, enabled: bool):
        self._console = None
        if enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_jupyter and importlib.util.find_spec("ipywidgets") is None:
                log.info("no progress bars in this notebook: they need ipywidgets (pip install 'motifgram[notebook]')")
            elif console.is_terminal or console.is_jupyter:
                self._console = console
        self.enabled = self._console is not None
        self._bars = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bars = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self._console, transient=False,
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
