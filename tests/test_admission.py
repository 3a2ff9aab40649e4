"""Memory and compute admission (issue 28): every image header read (archives too) under a
per-image pixel cap, memory bombs refused in a subprocess under an address-space limit, the
server-wide budget counting what is already admitted, a study as the peak of its cells, and a
per-identity step budget."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.serving import admission
from core.data import budget
from core.errors import ConfigError, DataError
from core.jobs import JobManager
from tests.helpers import make_folder, write_image

ROOT = Path(__file__).resolve().parent.parent
BOMB_SIDE = 6000  # 36 MP per image: a ~40 KB PNG of zeros


def _bomb_folder(root: Path, n: int = 24) -> Path:
    """A folder whose first file (the only one the old estimate read) is 8x8 and whose others decode to 36 MP each."""
    make_folder(root, classes=("a", "b"), per_class=1)  # a/000.png, b/000.png: 8x8
    big = root / "a" / "001.png"
    Image.new("L", (BOMB_SIDE, BOMB_SIDE)).save(big)
    data = big.read_bytes()
    for i in range(n):
        (root / ("a" if i % 2 else "b") / f"{i + 2:03d}.png").write_bytes(data)
    return root


def test_every_header_is_read_and_the_per_image_cap_refuses_a_bomb(tmp_path):
    folder = _bomb_folder(tmp_path / "bomb", n=2)
    with pytest.raises(DataError, match=rf"{BOMB_SIDE:,}×{BOMB_SIDE:,} = 36,000,000 pixels.*{budget.PIXELS_VAR}"):
        budget.estimate("imagefolder", str(folder), 32)
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(folder.rglob("*.png")):
            zf.write(p, f"data/{p.relative_to(folder)}")
    with pytest.raises(DataError, match="36,000,000 pixels"):
        budget.estimate("imagefolder", str(zpath), 32)
    # under a raised cap the estimate counts every file at the largest side (not the first file's 8 px)
    est = budget.estimate("imagefolder", str(folder), None, env={budget.PIXELS_VAR: str(40_000_000)})
    assert (est.images, est.native, est.size) == (5, BOMB_SIDE, BOMB_SIDE)
    assert est.bytes == 3 * 5 * 3 * BOMB_SIDE**2 + budget.DECODE_THREADS * BOMB_SIDE**2 * 8
    small = make_folder(tmp_path / "ok", classes=("x", "y"), per_class=3, size=(20, 10))
    est = budget.estimate("imagefolder", str(small), None)
    assert (est.images, est.native, est.bytes) == (6, 20, 3 * 6 * 3 * 400 + budget.DECODE_THREADS * 200 * 8)


GUARDED_LOAD = textwrap.dedent("""
    import sys
    from core.data.budget import check_budget
    from core.errors import DataError
    try:
        check_budget("imagefolder", sys.argv[1], None)
    except DataError as exc:
        print("REFUSED", str(exc)[:200])
        sys.exit(0)
    from core.data.loading import DataConfig, load_dataset
    ds = load_dataset(DataConfig(dataset="imagefolder", data_dir=sys.argv[1]))
    print("LOADED", len(ds.train))
""")


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_a_memory_bomb_is_refused_before_decoding_under_an_address_space_limit(tmp_path, as_zip):
    """The app's load path (the budget check, then the load) in a subprocess limited to 4 GB of
    address space: 24 small PNGs that decode to 36 MP each would take ~8 GB at their native size."""
    folder = _bomb_folder(tmp_path / "bomb")
    target = folder
    if as_zip:
        target = tmp_path / "bomb.zip"
        with zipfile.ZipFile(target, "w") as zf:
            for p in sorted(folder.rglob("*.png")):
                zf.write(p, f"data/{p.relative_to(folder)}")
    script = tmp_path / "load.py"
    script.write_text(GUARDED_LOAD)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "IMBALANCE_LAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["bash", "-c", f'ulimit -v 4000000; exec "{sys.executable}" "{script}" "{target}"'], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "REFUSED" in out.stdout and "36,000,000 pixels" in out.stdout, (out.returncode, out.stdout, out.stderr[-2000:])
    assert not (tmp_path / "cache" / "zips").exists()  # nothing extracted


class _Job:
    def __init__(self, kind, config, device="cpu", lane="train", owner=None, path="x"):
        self.kind, self.device, self.lane, self.owner = kind, device, lane, owner
        self.run = type("R", (), {"config": config, "path": Path(path)})()


def test_the_memory_budget_is_server_wide_and_counts_what_is_already_admitted():
    digits = {"dataset": "digits", "image_size": 64}
    one = admission.job_memory("cfg", {"data": digits, "batch_size": 64})
    load = budget.estimate("digits", None, 64).bytes
    assert one == load + 64 * 1 * 64 * 64 * 4 * admission.ACTIVATIONS  # the load plus batch × elements × 4 B × 64
    adm = admission.Admission(memory=int(2.5 * one), steps=10**9)
    adm.check("cfg", {"data": digits, "batch_size": 64}, "a", "train", "cpu", [])  # alone it fits
    running = [_Job("cfg", {"data": digits, "batch_size": 64}, device="cpu", path="r1"),
               _Job("cfg", {"data": digits, "batch_size": 64}, device="cuda:0", path="r2")]
    with pytest.raises(DataError, match=r"GB already admitted.*IMBALANCE_LAB_MEMORY_BUDGET_GB") as err:
        adm.check("cfg", {"data": digits, "batch_size": 64}, "a", "train", "cuda:1", running)
    assert "Lower the batch size or the image size" in str(err.value)
    # the same lane of a device runs one job at a time: a second one there adds nothing to the peak
    adm.check("cfg", {"data": digits, "batch_size": 64}, "a", "train", "cpu", running)
    # held datasets count too
    with pytest.raises(DataError):
        adm.check("cfg", {"data": digits, "batch_size": 64}, "a", "interactive", "cpu", running[:1], held=one)


def test_a_study_is_admitted_as_its_peak_cells_and_the_sum_of_their_steps():
    from core.study.presets import preset

    quick = preset("quick").to_dict()
    one_lane = admission.job_memory("study", quick)
    assert quick["cpu_lanes"] == 2 and admission.job_memory("study", {**quick, "cpu_lanes": 1}) < one_lane  # two cells at once
    big_batch = {**quick, "data": {**quick["data"], "image_size": 32}, "cfg_train": {**quick["cfg_train"], "batch_size": 100_000}}
    with pytest.raises(DataError, match="study job needs about"):
        admission.Admission.from_env({}).check("study", big_batch, "a", "train", "cpu", [])
    steps = admission.job_steps("study", quick)
    assert steps > admission.job_steps("study", {**quick, "seeds": quick["seeds"][:1]})
    huge = {**quick, "classifier_overrides": {c: {"steps": 10**9} for c in quick["classifiers"]}}
    with pytest.raises(ConfigError, match=admission.STEPS_VAR):
        admission.Admission.from_env({}).check("study", huge, "a", "train", "cpu", [])


def test_each_identity_has_a_step_budget_in_the_manager(tmp_path):
    release = threading.Event()

    def slow(ctx):
        while not release.is_set() and not ctx.should_stop():
            release.wait(0.02)

    adm = admission.Admission(memory=10**15, steps=1000)
    mgr = JobManager(root=tmp_path / "runs", devices=["cpu"], runners={"cfg": slow}, budget=adm.check)
    try:
        mgr.submit("cfg", {"data": {"dataset": "digits"}, "steps": 600}, owner="alice")
        with pytest.raises(ConfigError, match=rf"600 queued or running.*1,000.*{admission.STEPS_VAR}"):
            mgr.submit("cfg", {"data": {"dataset": "digits"}, "steps": 500}, owner="alice")
        mgr.submit("cfg", {"data": {"dataset": "digits"}, "steps": 900}, owner="bob")  # bob's own budget
        assert len(mgr.active()) == 2 and len(list((tmp_path / "runs").iterdir())) == 2  # the refused one left no folder
    finally:
        release.set()
        mgr.shutdown()


def test_a_header_past_pillows_own_limit_is_refused_not_skipped(tmp_path):
    """Issue 28: Pillow's DecompressionBombError (past 2 × its MAX_IMAGE_PIXELS) was taken as an unreadable file and
    skipped; the per-image cap is the bound, so the upload is refused."""
    from tests.hostile_inputs import png, zip_of

    good = {f"d/{c}/{i}.png": write_image(tmp_path / f"{c}{i}.png").read_bytes() for c in "ab" for i in range(2)}
    z = tmp_path / "bomb.zip"
    z.write_bytes(zip_of({**good, "d/a/big.png": png(20_000, 20_000)}))
    with pytest.raises(DataError, match="more pixels than Pillow opens"):
        budget.estimate("imagefolder", str(z), None)
