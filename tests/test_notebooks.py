"""Execute every notebook in notebooks/ in its short setting; any error (a failed assert) fails.

Each notebook runs its study through ``sobolev_flow.run.run`` into a temporary directory and
asserts the measured exponents, so executing it is the check. The environment variable
SOBOLEV_FLOW_NOTEBOOK_SHORT=1 selects the short setting (each notebook well under a minute).
"""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="executing the notebooks needs nbformat (pip install nbformat)")
nbclient = pytest.importorskip("nbclient", reason="executing the notebooks needs nbclient (pip install nbclient)")
pytest.importorskip("ipykernel", reason="executing the notebooks needs ipykernel (pip install ipykernel)")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("SOBOLEV_FLOW_NOTEBOOK_SHORT", "1")  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=dict(os.environ))  # raises CellExecutionError on the first failing cell


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not cleared"
