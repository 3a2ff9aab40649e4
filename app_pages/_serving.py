"""The app's side of serving a class (core.serving, core.settings.bounds, core.data.budget): the data
guard every load and job goes through, and the one bounded number widget. Who is asking (the
sign-in gate, the identity, the session id) is app_pages/_identity.py.
"""

from __future__ import annotations


from collections import OrderedDict

import streamlit as st

from core.serving import admission, server as serving
from core.settings import bounds
from core.errors import DataError
from core.data.budget import BUDGET_VAR, GB, budget_bytes, check_budget, estimate, refuse_over_budget
from app_pages._identity import check_dir, session_id, shared_server, strict  # noqa: F401  (session_id, shared_server: re-exported)



def guard_data(dataset: str, data_dir: str | None, image_size: int | None, stamp=None) -> None:
    """Raise a LabError before reading a folder outside the data roots or loading past the memory
    budget. The caller checks the roots (``serving.check_data_dir``) before it computes ``stamp``
    (a change marker of the folder, which reads it); the estimate is cached per stamp."""
    check_dir(data_dir)
    check_download(dataset, data_dir)
    est = refuse_over_budget(_estimate(dataset, data_dir, image_size, stamp), dataset)
    if est is not None:
        _admit_load((dataset, data_dir, image_size, stamp), est)


LOADS_HELD = 4  # app_pages/_dataset._load keeps this many datasets in memory (its max_entries)


@st.cache_resource(show_spinner=False)
def _held() -> "OrderedDict":
    """Server-wide: the datasets the app holds loaded (key -> estimated bytes), least recently used first."""
    return OrderedDict()


def held_bytes(but=None) -> int:
    return sum(b for k, b in _held().items() if k != but)


def _admit_load(key, est) -> None:
    """Refuse a load that, with the datasets the app already holds and the jobs already admitted,
    passes the server's memory budget; else count it as held (the oldest beyond LOADS_HELD dropped)."""
    from app_pages._manager import manager  # (here: _manager imports this module)

    held, limit = _held(), budget_bytes()
    jobs_now = admission.admitted_peak(manager().active())
    if est.bytes + held_bytes(but=key) + jobs_now > limit:
        raise DataError(f"Loading needs {est.text()}; with {held_bytes(but=key) / GB:.2f} GB of datasets already loaded and {jobs_now / GB:.2f} GB "
                        f"admitted to running jobs, that passes this server's memory budget of {limit / GB:.2f} GB; nothing was loaded.",
                        f"Pick a smaller image size (or the native size), or try again when jobs have ended; the person running the server "
                        f"can raise {BUDGET_VAR}.")
    held[key] = est.bytes
    held.move_to_end(key)
    while len(held) > LOADS_HELD:
        held.popitem(last=False)


def admission_check(kind: str, config: dict, owner, lane: str, device: str, active) -> None:
    """The job manager's ``budget``: core.serving.admission's memory and compute budgets, server-wide, with the loaded datasets held."""
    admission.Admission.from_env().check(kind, config, owner, lane, device, active, held=held_bytes())


@st.cache_data(max_entries=32, show_spinner=False)
def _estimate(dataset: str, data_dir: str | None, image_size: int | None, stamp):
    return estimate(dataset, data_dir, image_size)  # counting a folder's files walks it: once per change


def check_download(dataset: str, data_dir: str | None) -> None:
    """On a shared server, refuse a load that would download a torchvision set (into the data
    roots, once per new folder name) unless IMBALANCE_LAB_ALLOW_DOWNLOADS=1."""
    from core.data.loading import DataConfig, would_download

    if shared_server() and not serving.downloads_allowed() and would_download(DataConfig(dataset=dataset, data_dir=data_dir)):
        raise DataError(f"{dataset} is not on this server yet, and this server does not download datasets for its users; nothing was written.",
                        f"Pick a dataset folder under the data roots ({serving.ROOTS_VAR}) or upload a zip; the person running the "
                        f"server can put {dataset} there, or allow downloads with {serving.DOWNLOADS_VAR}=1.")


def admit_job(kind: str, config: dict) -> None:
    """The app's check of a job before it is created: its data inside the roots, within the budget."""
    for d in serving.data_dirs_in(config):
        check_dir(d)
    if strict():  # an SD model named by a study file or a form: inside the roots or the models folder, or a known hub id
        from core.generators.sd.weights import ALIASES, KNOWN_MODELS
        from core.paths import models_dir

        roots = serving.data_roots() + [models_dir().resolve()]
        for ref in serving.model_refs_in(config):
            serving.check_model_ref(ref, roots, [*KNOWN_MODELS, *ALIASES], serving.downloads_allowed())
    data = config.get("data")
    if isinstance(data, dict) and data.get("dataset"):
        check_download(data["dataset"], data.get("data_dir"))
        check_budget(data["dataset"], data.get("data_dir"), data.get("image_size"))


def number(label: str, name: str, value, key: str, help: str | None = None, where=None, **kw):
    """st.number_input with the range of ``core.settings.bounds.BOUNDS[name]``, stated in its help text.

    The default (a remembered or linked value) is clamped first, so an out-of-range value
    never raises StreamlitValueAboveMaxError. ``where``: a column or container (default st).
    """
    b = bounds.BOUNDS[name]
    lo, hi = (int(b.lo), int(b.hi)) if b.integer else (float(b.lo), float(b.hi))
    value = bounds.clamp_default(name, value)
    return (where or st).number_input(label, lo, hi, value, key=key, help=bounds.help_text(name, help), **kw)


def show_notes(notes: list[str]) -> None:
    """The URL's values that were clamped or ignored, once."""
    if notes:
        st.warning("The link's settings were adjusted: " + " ".join(notes))

