"""Pure helpers behind the pages: image grids, figures, result tables, zip export."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from core.study import tables as report
from core.viz import figures as viz
from core.data.imageset import ImageSet
from core.jobs.runners import export_zip, load_imageset, save_imageset
from core.store.runs import Run


def test_image_grid_layout_scale_and_grayscale():
    imgs = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    imgs[1] = 200
    g = viz.image_grid(imgs, ncol=3, pad=1, scale=2)
    assert g.shape == (2 * 8 + 3, 3 * 8 + 4, 3) and g.dtype == np.uint8
    assert (g[1:9, 10:18] == 200).all() and (g[1:9, 1:9] == 0).all()  # image 1 sits in column 2
    assert (g[10:18, 19:27] == 255).all()  # the 6th cell is empty padding
    rows = viz.rows_grid([imgs[:2], imgs[:4]], pad=0, scale=1)
    assert rows.shape == (8, 16, 3)
    with pytest.raises(ValueError):
        viz.image_grid(np.zeros((2, 4, 4), np.uint8))


def test_counts_and_metric_figures_carry_the_numbers():
    fig = viz.counts_figure(["a", "b"], [5, 10], [5, 0], [10, 10], minority=[0])
    assert list(fig.data[0].y) == [5, 10] and list(fig.data[1].y) == [5, 0]
    assert fig.layout.barmode == "stack" and len(fig.layout.shapes) == 1
    df = pd.DataFrame({"method": ["mixup", "mixup", "cfg@w=7.5"], "arch": ["resnet18"] * 3, "accuracy": [0.7, 0.8, 0.9]})
    f = viz.metric_bars(df, "accuracy", scale=100, paper=viz.paper_reference("accuracy"))
    ours = dict(zip(f.data[0].x, f.data[0].y))
    assert ours["mixup"] == pytest.approx(75.0) and ours["cfg@w=7.5"] == pytest.approx(90.0)
    assert f.data[0].error_y.array[list(f.data[0].x).index("mixup")] == pytest.approx(np.std([70, 80], ddof=1))
    assert f.data[1].name.startswith("paper (Yoo et al. 2024") and dict(zip(f.data[1].x, f.data[1].y))["cutmix"] == 80.3
    assert viz.paper_reference("fid")["cfg@w=7.5"] == 17.7 and viz.paper_reference("macro_f1") == {}
    assert viz.method_label("cfg", {"w": 0.1}) == "cfg@w=0.1" and viz.method_label(None) == "none"


def test_report_reads_standalone_and_study_cells(tmp_path):
    root = tmp_path / "runs"
    a = Run.create("classifier", {"data": {"dataset": "digits"}, "arch": "small", "seed": 0, "balance_method": "mixup", "balance_params": {}}, root=root)
    (a.path / "results.json").write_text(json.dumps({"accuracy": 0.9, "macro_f1": 0.88, "per_class_f1": [0.8, 1.0], "classes": ["x", "y"],
                                                    "confusion_matrix": [[4, 1], [0, 5]], "minority_classes": [0]}))
    s = Run.create("study", {"name": "q"}, root=root)
    cell = s.path / "cells" / "cfg_w7.5__small__seed1"
    cell.mkdir(parents=True)
    (cell / "config.json").write_text(json.dumps({"kind": "classifier", "data": {"dataset": "digits"}, "seed": 1, "arch": "small",
                                                  "balance_method": "cfg", "balance_params": {"w": 7.5}}))
    (cell / "results.json").write_text(json.dumps({"accuracy": 0.95, "macro_f1": 0.9, "per_class_f1": [0.9, 0.9], "arch": "small"}))
    (s.path / "generation").mkdir()
    (s.path / "generation" / "cfg_w7.5__seed1.json").write_text(json.dumps({"key": "fd_judge", "fd_judge": 3.5, "label": "FD (judge CNN)",
                                                                            "variant": "cfg@w=7.5", "seed": 1, "kid": 0.01}))
    (s.path / "generation" / "broken.json").write_text("{not json")
    df = report.classifier_results(root)
    assert sorted(df["method"]) == ["cfg@w=7.5", "mixup"] and set(df["source"]) == {"standalone", s.id}
    long = report.per_class_long(df)
    assert len(long) == 4 and set(long["class"]) == {0, 1}
    g = report.generation_results(root)
    assert len(g) == 1 and g.iloc[0]["label"] == "FD (judge CNN)" and g.iloc[0]["value"] == 3.5
    diff = report.compare_configs({"r1": {"lr": 0.1, "data": {"dataset": "digits"}}, "r2": {"lr": 0.2, "data": {"dataset": "digits"}}})
    assert list(diff.index) == ["lr"]


def test_imageset_roundtrip_and_zip_export(tmp_path):
    s = ImageSet(torch.randint(0, 255, (6, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 0, 1, 1, 1, 0]), ["cat", "dog"],
                 provenance=np.array(["real", "mixup", "real", "mixup", "mixup", "real"], dtype=object))
    run = tmp_path / "run"
    save_imageset(run / "generated.npz", s)
    (run / "params.json").write_text(json.dumps({"seed": 3}))
    back = load_imageset(run / "generated.npz")
    assert torch.equal(back.images, s.images) and back.classes == ["cat", "dog"] and list(back.provenance) == list(s.provenance)
    with zipfile.ZipFile(io.BytesIO(export_zip(run))) as zf:
        names = sorted(zf.namelist())
        assert names == ["00_cat/00000.png", "01_dog/00000.png", "01_dog/00001.png", "params.json"]
        assert json.loads(zf.read("params.json")) == {"seed": 3}


def test_labelled_grid_keeps_the_images_and_adds_row_and_column_labels():
    import numpy as np

    from core.viz import figures as viz

    rows = [np.full((3, 1, 8, 8), v, np.uint8) for v in (0, 128)]
    body = viz.rows_grid(rows, scale=2)
    g = viz.labelled_grid(rows, ["w = 0", "w = 7.5"], ["seed 0", "seed 1", "seed 2"], scale=2, col_title="seeds")
    top, left = g.shape[0] - body.shape[0], g.shape[1] - body.shape[1]
    assert top > 0 and left >= 6 * len("w = 7.5")
    assert (g[top:, left:] == body).all()  # the images themselves are untouched
    assert (g[top:, :left] < 128).any()  # row labels are drawn
    assert (g[:top, left:] < 128).any()  # column labels are drawn
    assert (g[:top, :left] == 255).all()  # the corner stays blank (no row title)
