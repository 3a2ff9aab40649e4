"""The lab installs (issue 18 item 1): pyproject.toml, the `imbalance-lab` command, --version from
one source, and, for a regular (non-editable) install, data beside the user, never in site-packages.

Kept cheap: the packages come from the test's own interpreter (a .pth file in a bare venv),
and pip installs only the lab itself (--no-deps --no-build-isolation, no network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import core
from core import paths

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["core", "app.py", "app_pages", ".streamlit", "studies", "pyproject.toml", "requirements.txt", "requirements-test.txt", "requirements-mlflow.txt",
           "requirements-ray.txt", "requirements-wandb.txt", "README.md", "LICENSE"]
STUDY_FILES = sorted(p.name for p in (ROOT / "studies").glob("*.toml"))


def _run(*cmd, cwd=None, env=None) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout.strip()


def test_pyproject_declares_the_command_and_one_version_source():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "imbalance-lab"
    assert meta["project"]["scripts"] == {"imbalance-lab": "core.cli:main"}
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "core.__version__"}
    assert meta["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert meta["tool"]["setuptools"]["dynamic"]["optional-dependencies"]["mlflow"] == {"file": ["requirements-mlflow.txt"]}
    assert "mlflow-skinny>=2.9" in (ROOT / "requirements-mlflow.txt").read_text().splitlines()
    extras = meta["tool"]["setuptools"]["dynamic"]["optional-dependencies"]
    assert extras["ray"] == {"file": ["requirements-ray.txt"]} and extras["wandb"] == {"file": ["requirements-wandb.txt"]}
    assert [r.name for r in _requirements("requirements-ray.txt")] == ["ray"]
    assert [r.name for r in _requirements("requirements-wandb.txt")] == ["wandb"]


def test_metadata_names_the_licence_authors_and_classifiers():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence and "END OF TERMS AND CONDITIONS" in licence
    assert meta["authors"] and all(a.get("name") for a in meta["authors"])
    assert "Programming Language :: Python :: 3.10" in meta["classifiers"]
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")]  # PEP 639: the SPDX string says it


def test_the_wheels_package_list_is_every_package_of_core():
    """pyproject.toml lists core's packages by hand (core._app maps to the repository's top); a new
    package missing from the list would be left out of the wheel."""
    from setuptools import find_packages

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(find_packages(str(ROOT), include=["core", "core.*"]) + ["core._app"])


def test_python_m_core_version():
    out = _run(sys.executable, "-m", "core", "--version", cwd=ROOT)
    assert out == f"imbalance-lab {core.__version__}"
    assert core.__version__ == "0.1.0"


# ------------------------------------------------------------------ where data goes
def test_checkout_keeps_data_beside_the_code(monkeypatch, tmp_path):
    for var in ("IMBALANCE_LAB_RUNS", "IMBALANCE_LAB_MODELS", "IMBALANCE_LAB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.is_checkout()
    assert paths.runs_dir() == ROOT / "runs" and paths.models_dir() == ROOT / "models" and paths.cache_dir() == ROOT / ".cache"
    assert paths.app_dir() == ROOT


def test_installed_copy_keeps_data_in_the_working_directory(monkeypatch, tmp_path):
    """core/ inside site-packages (no pyproject.toml beside it): runs/, models/, .cache/ follow the
    folder the command runs in; the environment variables still win."""
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "core").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(paths, "PROJECT_ROOT", site)
    for var in ("IMBALANCE_LAB_RUNS", "IMBALANCE_LAB_MODELS", "IMBALANCE_LAB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(work)
    assert not paths.is_checkout()
    assert (paths.runs_dir(), paths.models_dir(), paths.cache_dir()) == (work / "runs", work / "models", work / ".cache")
    monkeypatch.setenv("IMBALANCE_LAB_RUNS", str(tmp_path / "elsewhere"))
    assert paths.runs_dir() == tmp_path / "elsewhere"
    assert paths.models_dir() == work / "models"


# ------------------------------------------------------------------ real installs
@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """The files a user's clone holds that matter to packaging, copied (pip writes build files into its source)."""
    src = tmp_path_factory.mktemp("clone")
    for name in SHIPPED:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(p, src / name)
    return src


def _venv(where: Path) -> Path:
    """A bare venv that sees this interpreter's packages (torch, setuptools, ...) through a .pth file."""
    _run(sys.executable, "-m", "venv", "--without-pip", where)
    site = next((where / "lib").glob("python3*/site-packages"))
    (site / "_test_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return where / "bin"


def _pip(venv_bin: Path, *args) -> str:
    return _run(sys.executable, "-m", "pip", "--python", venv_bin / "python", "install", "-q", "--no-deps", "--no-build-isolation", *args)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMBALANCE_LAB_") and k != "PYTHONPATH"}
    return env


def test_editable_install_gives_the_imbalance_lab_command(source_copy, tmp_path):
    bin_ = _venv(tmp_path / "venv")
    _pip(bin_, "-e", source_copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _run(bin_ / "imbalance-lab", "--version", cwd=elsewhere, env=_clean_env()) == f"imbalance-lab {core.__version__}"
    assert _run(bin_ / "imbalance-lab", "report", "--help", cwd=elsewhere, env=_clean_env()).startswith("usage: imbalance-lab report")  # its real name
    where = _run(bin_ / "python", "-c", "import core, core.paths as p; print(core.__file__); print(p.runs_dir())", cwd=elsewhere, env=_clean_env())
    assert where.splitlines() == [str(source_copy / "core" / "__init__.py"), str(source_copy / "runs")]


APP_CHECK = """
import sys
from streamlit.testing.v1 import AppTest
import core
from core.paths import app_dir
print(core.__file__)
print(app_dir())
at = AppTest.from_file(str(app_dir() / "app.py"), default_timeout=180)
at.session_state["_intro_dismissed"] = True
at.run()
assert not at.exception, [e.value for e in at.exception]
at.switch_page("app_pages/study.py").run()
at.radio(key="study_source").set_value("file in studies/").run()
assert not at.exception, [e.value for e in at.exception]
print(",".join(at.selectbox(key="study_file").options))
"""


@pytest.fixture(scope="module")
def wheel(source_copy, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, source_copy)
    (whl,) = dist.glob("imbalance_lab-*.whl")
    return whl


def test_wheel_install_puts_data_in_the_working_directory_and_runs_the_app(wheel, source_copy, tmp_path):
    bin_ = _venv(tmp_path / "venv")
    _pip(bin_, wheel)
    work = tmp_path / "work"
    work.mkdir()
    code = "import core, core.paths as p; print(core.__file__); print(p.runs_dir()); print(p.models_dir()); print(p.cache_dir()); print(p.app_dir())"
    lines = _run(bin_ / "python", "-c", code, cwd=work, env=_clean_env()).splitlines()
    assert "site-packages" in lines[0] and str(source_copy) not in lines[0]
    assert lines[1:4] == [str(work / "runs"), str(work / "models"), str(work / ".cache")]
    app = Path(lines[4])
    assert app == Path(lines[0]).parent / "_app"  # package data beside the code, found through importlib.resources
    for f in ("app.py", "app_pages/results.py", "app_pages/_jobs.py", ".streamlit/config.toml", "studies/quick.toml"):
        assert (app / f).is_file(), f
    assert not (tmp_path / "venv" / "share" / "imbalance-lab").exists()
    assert _run(bin_ / "imbalance-lab", "--version", cwd=work, env=_clean_env()) == f"imbalance-lab {core.__version__}"
    assert _run(bin_ / "python", "-c", "from importlib.metadata import version; print(version('imbalance-lab'))", cwd=work) == core.__version__
    meta = _run(bin_ / "python", "-c", "from importlib.metadata import metadata as m; d = m('imbalance-lab'); "
                "print(d['License-Expression']); print(sorted(d.get_all('Provides-Extra')))", cwd=work).splitlines()
    assert meta == ["Apache-2.0", str(sorted(["mlflow", "ray", "test", "wandb"]))]

    # the launcher says which runs folder it uses, and it is the one the app then uses
    out = _run(bin_ / "imbalance-lab", "app", "--check", cwd=work, env=_clean_env())
    assert f"runs folder: {work / 'runs'}" in out.splitlines()
    assert f"study files ({len(STUDY_FILES)}) in {app / 'studies'}: {', '.join(STUDY_FILES)}" in out.splitlines()
    # the installed app starts and its Study page lists the shipped study files
    got = _run(bin_ / "python", "-c", APP_CHECK, cwd=work, env={**_clean_env(), "IMBALANCE_LAB_CACHE": str(tmp_path / "cache")}).splitlines()
    assert got[0] == lines[0] and got[1] == str(app)
    assert got[-1].split(",") == STUDY_FILES and "quick.toml" in STUDY_FILES


def test_pip_target_and_zipapp_find_the_app(wheel, tmp_path):
    """`pip install --target` (no venv, no share/ folder) and the same tree zipped: the study files are found."""
    target = tmp_path / "target"
    _run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, wheel)
    code = "from core.paths import app_dir; from core.study.start import study_files; print(app_dir()); print(','.join(study_files()))"
    work = tmp_path / "work"
    work.mkdir()
    lines = _run(sys.executable, "-c", code, cwd=work, env={**_clean_env(), "PYTHONPATH": str(target)}).splitlines()
    assert lines == [str(target / "core" / "_app"), ",".join(STUDY_FILES)]
    zipped = shutil.make_archive(str(tmp_path / "lab"), "zip", target, "core")
    lines = _run(sys.executable, "-c", code, cwd=work, env={**_clean_env(), "PYTHONPATH": zipped}).splitlines()
    assert lines == [str(work / ".cache" / f"app-{core.__version__}"), ",".join(STUDY_FILES)]  # copied out of the zip: Streamlit runs files
    assert (work / ".cache" / f"app-{core.__version__}" / "app_pages" / "study.py").is_file()


# ------------------------------------------------------------------ reproducible installs (item 2)
def _requirements(*files: str) -> list:
    from packaging.requirements import Requirement

    out = []
    for f in files:
        for line in (ROOT / f).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(Requirement(line))
    return out


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def _imported_top_level(*roots: Path) -> set[str]:
    import ast

    names = set()
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"core", "app_pages", "__future__"}


OPTIONAL = {"ray", "mlflow", "wandb"}  # the extras: --ray, --log-with mlflow, --log-with wandb


def test_every_imported_package_is_declared():
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    declared = {_canon(r.name) for r in _requirements("requirements.txt")}
    imported = _imported_top_level(ROOT / "core", ROOT / "app_pages", ROOT / "app.py")
    assert {"torch", "huggingface_hub", "tokenizers", "torch_fidelity", "sklearn", "PIL"} <= imported
    missing = {}
    for module in sorted(imported - OPTIONAL):
        names = {_canon(d) for d in dists.get(module, [module])}
        if not names & declared:
            missing[module] = sorted(names)
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_constraints_pin_every_requirement_exactly_and_satisfy_the_floors():
    """constraints.txt (make lock) pins each package to one plain PyPI version per Python; a floor
    raised in requirements*.txt without `make lock` fails here."""
    from packaging.markers import Marker

    pins: dict[str, list[tuple[str, str | None]]] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, _, marker = line.partition(";")
        name, sep, version = spec.strip().partition("==")
        assert sep and version, f"not an exact pin: {line!r}"
        assert "+" not in version, f"local build tag in the lock: {line!r}"
        pins.setdefault(_canon(name), []).append((version, marker.strip() or None))
    for req in _requirements("requirements.txt", "requirements-test.txt", "requirements-bench.txt"):
        if req.marker is not None and not req.marker.evaluate():
            continue
        here = [v for v, m in pins.get(_canon(req.name), []) if m is None or Marker(m).evaluate()]
        assert len(here) == 1, f"{req.name}: {len(here)} pins apply to this Python"
        assert req.specifier.contains(here[0], prereleases=True), f"{req.name}=={here[0]} does not satisfy {req}"
    from packaging.version import Version

    assert pins["torch"] and all(Version(v) >= Version("2.5") for v, _ in pins["torch"])  # torch.OutOfMemoryError


def test_make_run_cpu_installs_torch_from_the_cpu_index_before_the_rest(tmp_path):
    """`make run CPU=1` (README, "A CPU-only machine"): torch and torchvision from PyTorch's CPU
    index, under the lock, before requirements.txt could pull PyPI's CUDA build (dry run: -n)."""
    out = _run("make", "-n", "run", "CPU=1", f"VENV={tmp_path / 'v'}", cwd=ROOT).splitlines()
    cpu = [i for i, line in enumerate(out) if "--index-url https://download.pytorch.org/whl/cpu" in line]
    req = [i for i, line in enumerate(out) if "-r requirements.txt" in line]
    assert len(cpu) == 1 and len(req) == 1 and cpu[0] < req[0]
    assert "install -q torch torchvision" in out[cpu[0]] and "-c constraints.txt" in out[cpu[0]]
    assert not [line for line in _run("make", "-n", "run", f"VENV={tmp_path / 'v'}", cwd=ROOT).splitlines() if "whl/cpu" in line]


def test_the_floors_check_ran_green_with_todays_floors():
    """`make test-floors` (lowest-direct versions, then the fast tests) left bench/results/floors.txt:
    it passed, and with the floors requirements.txt declares now (a changed floor needs a rerun)."""
    from packaging.version import Version

    recipe = _run("make", "-n", "test-floors", "VENV=/nonexistent-venv", cwd=ROOT)
    assert "--resolution lowest-direct -r requirements.txt" in recipe and "bench/floors.py" in recipe
    text = (ROOT / "bench" / "results" / "floors.txt").read_text()
    assert text.rstrip().endswith("exit status 0") and " passed" in text and " failed" not in text
    table = {}
    for line in text.split("requirement            floor      installed\n", 1)[1].split("\n\n", 1)[0].splitlines():
        name, spec, got = line.split()
        table[_canon(name)] = (spec, got)
    for req in _requirements("requirements.txt"):
        if req.marker is not None and not req.marker.evaluate():
            continue
        spec, got = table[_canon(req.name)]
        assert spec == str(req.specifier), f"{req.name}: floors.txt ran with {spec}, requirements.txt says {req.specifier}: rerun make test-floors"
        floor = Version(str(req.specifier).removeprefix(">="))
        assert Version(got) >= floor and Version(got).release[:2] == floor.release[:2], f"{req.name} {got} is not at its floor {floor}"
