"""The floors check (``make test-floors``): run the fast tests in a venv holding the lowest versions
requirements.txt allows, and write what ran with what to bench/results/floors.txt.

``make test-floors`` makes ``.venv-floors/`` with ``uv pip install --resolution lowest-direct``
(each direct requirement at its floor, or the lowest version its neighbours accept), then runs
this script with that venv's Python:

    .venv-floors/bin/python bench/floors.py             # writes bench/results/floors.txt, exits as pytest did

The fast tests are those that exercise the declared APIs (pandas' DataFrame.map, Streamlit's
AppTest and widgets, diffusers' pipeline loading, torch, scikit-learn, safetensors, filelock ...)
without the optional extras (Ray, MLflow, W&B), the browser or a notebook kernel.
Only PyPI is reachable here, so Linux torch comes with its CUDA libraries (it runs on the CPU).
"""

from __future__ import annotations

import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "floors.txt"
FAST = ["test_imports.py", "test_stats.py", "test_gate.py", "test_profiles.py", "test_data.py", "test_curves.py", "test_losses.py",
        "test_metrics_classification.py", "test_runs.py", "test_sharing.py", "test_export.py", "test_cfg_guidance.py",
        "test_report.py", "test_study_report.py", "test_app_pages.py", "test_app_compare.py", "test_baselines.py"]


def requirements() -> list[tuple[str, str]]:
    """(name, specifier) of requirements.txt's lines that apply to this Python."""
    from packaging.requirements import Requirement

    out = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                out.append((req.name, str(req.specifier)))
    return out


def main() -> int:
    t0 = time.time()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "600", *[f"tests/{f}" for f in FAST]]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    tail = [line for line in done.stdout.splitlines() if re.match(r"^(FAILED|ERROR|=* ?\d+ (passed|failed|errors?|skipped))", line)]
    lines = ["# make test-floors: the fast tests against the lowest versions requirements.txt allows",
             f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')}, Python {platform.python_version()} on {platform.platform()}, "
             f"{time.time() - t0:.0f} s",
             "# installed by: uv pip install --resolution lowest-direct -r requirements.txt 'pytest>=8.0' 'pytest-timeout>=2.2' 'hypothesis>=6.100'",
             "", "requirement            floor      installed"]
    for name, spec in requirements():
        try:
            got = metadata.version(name)
        except metadata.PackageNotFoundError:
            got = "(not installed)"
        lines.append(f"{name:<22} {spec:<10} {got}")
    lines += ["", "$ " + " ".join(["python", *cmd[1:]]), *tail, f"exit status {done.returncode}"]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if done.returncode:
        print(done.stdout[-6000:], done.stderr[-3000:], sep="\n")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
