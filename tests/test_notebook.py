"""examples/quickstart.ipynb runs headless (issue 30 §5): digits made imbalanced, a tiny CFG, samples
at three w, two classifiers compared and plotted. Executed with nbclient in a python3 kernel that
imports this checkout's ``core``; about 80 s on a quiet 2-core CPU."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


@pytest.mark.timeout(900)
def test_quickstart_notebook_runs_headless(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("IMBALANCE_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IMBALANCE_LAB_RUNS", raising=False)
    t0 = time.time()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"quickstart.ipynb ran in {time.time() - t0:.0f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    out = "\n".join(_stdout(c) for c in code)
    # the paper's profile on digits: class i keeps (i+1)/10 of its training images; the CFG fill tops every class up to the largest
    assert "training images per class: {'0': 14, '1': 29, " in out and "'9': 144}" in out
    assert "filled training set: {'0': 144, '1': 144, " in out
    assert out.count("accuracy 0.") == 2 and "imbalanced (none): accuracy" in out and "filled with CFG, w = 0.1: accuracy" in out
    plots = [c for c in code if any(PLOTLY in o.get("data", {}) for o in c.outputs)]
    assert len(plots) == 3  # the counts, the samples at three w, the per-class F1 comparison
    grid = next(o["data"][PLOTLY] for o in plots[1].outputs if PLOTLY in o.get("data", {}))
    assert "w = 0.0, 0.1, 7.5" in grid["layout"]["title"]["text"]
    bars = next(o["data"][PLOTLY] for o in plots[2].outputs if PLOTLY in o.get("data", {}))
    assert [t["name"] for t in bars["data"]] == ["imbalanced (none)", "filled with CFG, w = 0.1"]
    assert all(len(t["y"]) == 10 for t in bars["data"])
    runs = tmp_path / "runs" / "quickstart"
    assert (runs / "cfg" / "checkpoints" / "latest").is_dir()
    assert (runs / "imbalanced" / "results.json").is_file() and (runs / "filled" / "results.json").is_file()
