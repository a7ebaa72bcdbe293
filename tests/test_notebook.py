"""The notebook API under a real Jupyter kernel: examples/quickstart.ipynb runs headless (nbclient) and trains,
plots inline and loads its best model."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_api_keeps_the_callers_thread_count(tmp_path):
    """A notebook's torch.set_num_threads stands (the command line's default would share out the cores)."""
    import torch

    import ignite_lab

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = ignite_lab.run("xor", epochs=1, output_dir=str(tmp_path))
    finally:
        torch.set_num_threads(before)
    assert run.summary["threads"] == 1 and run.summary["status"] == "completed"


def test_the_example_notebook_trains_plots_and_loads_its_model(tmp_path):
    notebook = nbformat.read(EXAMPLE, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    train, metrics, summary, model = (cell for cell in notebook.cells if cell.cell_type == "code")
    assert any("image/png" in out.get("data", {}) for out in train.outputs), "run.plot() drew nothing inline"
    assert "accuracy" in metrics.outputs[-1]["data"]["text/plain"]  # the DataFrame's columns
    assert "'completed'" in summary.outputs[-1]["data"]["text/plain"]
    assert "Sequential" in model.outputs[-1]["data"]["text/plain"]
    assert len(list((tmp_path / "runs" / "xor").iterdir())) == 1  # trained where the notebook runs, once
