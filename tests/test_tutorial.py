"""The tutorial notebook (docs/tutorial.ipynb) runs from top to bottom in a Jupyter kernel."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def test_the_tutorial_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # kept clean
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}},
                            ).execute()
    outputs = {k: cell.outputs for k, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    assert not [o for cell in outputs.values() for o in cell if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for cell in outputs.values() for o in cell)
    assert "median bond length 0.14" in text and "atoms found" in text
    images = [o for cell in outputs.values() for o in cell if "image/png" in o.get("data", {})]
    assert images  # the plot
