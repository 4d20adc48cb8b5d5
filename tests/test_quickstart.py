"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel, test-only), shows
its pictures, and the committed copy carries the rendered outputs the README points to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"

nbformat = pytest.importorskip("nbformat", reason="nbformat is a test dependency (pip install '.[test]')")


def _shown(cell) -> int:
    """Pictures a cell displays: PNG outputs and inline <img> data URIs in HTML outputs."""
    n = 0
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        n += "image/png" in data
        html = data.get("text/html", "")
        n += ("".join(html) if isinstance(html, list) else html).count("data:image/png;base64,")
    return n


def _picture_cells(nb) -> list:
    """Code cells whose first line is a comment naming a picture (all but set-up, classify and the table)."""
    return [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("#")
            and not c.source.startswith(("# the network", "# layer table"))]


def test_committed_notebook_has_its_pictures():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "STEPS = 64" in params[0].source
    cells = _picture_cells(nb)
    assert len(cells) >= 9
    missing = [c.source.splitlines()[0] for c in cells if _shown(c) == 0]
    assert not missing, f"the committed notebook lacks the outputs of {missing}: run scripts/figures/quickstart.py"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


@pytest.mark.slow
def test_quickstart_runs_top_to_bottom(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel", reason="ipykernel is a test dependency (pip install '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is a test dependency (pip install '.[test]')")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
            if "parameters" in c.metadata.get("tags", []):
                c.source = "STEPS = 2  # the test's small size"
    (tmp_path / "images").symlink_to(REPO / "examples" / "images")
    # the kernel imports this checkout's jaxvis
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on a failing cell
    assert all(_shown(c) >= 1 for c in _picture_cells(nb)), [c.source.splitlines()[0] for c in _picture_cells(nb)
                                                              if not _shown(c)]
    table = next(c for c in nb.cells if c.source.startswith("# layer table"))
    assert "fire9-concat" in "".join(table.outputs[0]["data"]["text/html"])
