"""The paper-smoke preset end to end on the CIFAR-10 copy: the paper preset's code path with small
numbers, every method, SD unavailable with its reason (no GPU / no weights here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "cifar10"


@pytest.mark.skipif(not (DATA / "train").is_dir(), reason="the CIFAR-10 copy is not at ../shared/data/cifar10")
@pytest.mark.timeout(1500)
def test_paper_smoke_runs_every_method(tmp_path):
    out = tmp_path / "smoke"
    r = subprocess.run([sys.executable, "-m", "core", "experiment", "--preset", "paper-smoke", "--data-dir", str(DATA),
                        "--device", "cpu", "--out", str(out), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=1400)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["state"] == "done" and res["test_size"] == 200  # 20 test images per class
    # 1 CFG training, 7 fills (real, oversample, mixup, cutmix, cfg@0.1, cfg@7.5, sd), 12 classifiers, 1 post-hoc
    # adjustment; SD's fill and classifier are unavailable
    assert res["cells"] == {"ok": 19, "failed": 0, "unavailable": 2, "cancelled": 0}
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == ["none", "real", "oversample", "mixup", "cutmix", "cfg@w=0.1", "cfg@w=7.5", "sd", "reweight", "logit-adjust",
                          "posthoc-adjust", "cfg@w=0.1+logit-adjust", "cfg@w=7.5+logit-adjust"]
    assert rows["real"]["real_images"]["used"] == rows["real"]["real_images"]["wanted"] == 30  # CIFAR-10's pool is ample
    assert rows["none"]["curve_split"] == "validation"
    assert {r["classifier"] for r in rows.values()} == {"resnet18"}
    assert rows["sd"]["state"] == "unavailable" and ("GPU" in rows["sd"]["reason"] or "weights" in rows["sd"]["reason"])
    # 5·(i+1) per class = 275; a full fill tops classes 0–2 up to 20 (+30); the partial fill of the
    # combinations takes them to round(√(n·20)) = 10, 14, 17 (+5, +4, +2)
    sizes = {"none": 275, "reweight": 275, "logit-adjust": 275, "posthoc-adjust": 275,
             "cfg@w=0.1+logit-adjust": 286, "cfg@w=7.5+logit-adjust": 286}
    for name, row in rows.items():
        if name == "sd":
            continue
        assert row["state"] == "ok" and row["seeds"] == [0] and row["steps"] == 4 and row["batch_size"] == 32
        assert row["train_size"] == sizes.get(name, 305), name
    cfg_run = json.loads((out / "cfg" / "seed0" / "status.json").read_text())
    assert cfg_run["state"] == "done" and cfg_run["step"] == 3
    status = json.loads((out / "status.json").read_text())
    assert {c["device"] for c in status["cells"].values() if c["state"] == "ok"} == {"cpu"}
