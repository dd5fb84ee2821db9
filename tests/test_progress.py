"""Progress bars: on a terminal and in Jupyter, never with quiet."""

import pytest

from motifgram.engine.progress import Progress

CELL = """\
from motifgram.engine.progress import Progress
with Progress(enabled={enabled}) as progress, progress.task("atoms, features, graph", 3) as advance:
    for _ in range(3):
        advance()
print(progress.enabled)
"""


def _run_in_a_kernel(source):
    """The outputs of one cell run by a real Jupyter kernel (this interpreter)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")  # ipykernel's own: this Python
    client.execute()
    return notebook.cells[0].outputs


def test_bars_are_a_widget_in_jupyter():
    pytest.importorskip("ipywidgets")
    outputs = _run_in_a_kernel(CELL.format(enabled=True))
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1  # one live widget, redrawn in place
    assert [o["text"] for o in outputs if o.get("name") == "stdout"] == ["True\n"]


def test_quiet_shows_nothing_in_jupyter():
    outputs = _run_in_a_kernel(CELL.format(enabled=False))
    assert outputs == [{"output_type": "stream", "name": "stdout", "text": "False\n"}]


def test_no_bars_in_a_log_file(capsys):
    """Standard error redirected to a file (a batch job): the stages are only logged."""
    with Progress(enabled=True) as progress, progress.task("tokens", 2) as advance:
        advance()
    assert not progress.enabled and capsys.readouterr().err == ""
