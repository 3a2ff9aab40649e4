"""The run store: one folder per job, readable by people, pandas and the app.

    runs/<id>/config.json     the job's config dataclass (+ kind, created, provenance: commit,
                              versions, device, command line or app page; core.store.provenance)
    runs/<id>/status.json     state, step/total, ETA, message, error (atomic rewrite)
    runs/<id>/metrics.jsonl   append-only, one JSON object per line
    runs/<id>/checkpoints/    latest/ and best/ (see core.store.checkpoint)
    runs/<id>/images/         previews and generated images

States: queued -> running -> done | failed | cancelled; a run found ``running`` with
no live owner after a server restart is shown as ``interrupted`` and can resume.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from core.store.atomic import atomic_write_json, read_json
from core.errors import ConfigError
from core.paths import runs_dir
from core.store.provenance import KEY as PROVENANCE
from core.store.provenance import record as provenance_record

META_KEYS = ("kind", "created", PROVENANCE, "regated")  # what config.json holds besides the job's own settings (regated: core.study.run)
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
OWNER_FILE = "owner.json"  # {"user": identity}: who may cancel, resume and see the run on a shared server
ENDED = ("done", "failed", "cancelled", "interrupted")


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-")[:40] or "run"


class Run:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- creation ------------------------------------------------------------------
    @classmethod
    def create(cls, kind: str, config: dict, root: str | os.PathLike | None = None, name: str | None = None,
               page: str | None = None, device: str | None = None) -> "Run":
        """A new run folder under ``root``; ``page``: the app page that started it (else the command line is recorded)."""
        root = Path(root) if root else runs_dir()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(kind)}" + (f"-{_slug(name)}" if name else "")
        path, i = root / base, 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                i += 1
                path = root / f"{base}-{i}"
        run = cls(path)
        run.write_config(kind, config, page=page, device=device)
        run.set_status("queued", message="waiting to start")
        return run

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, kind: str, config: dict, resume: bool = False, device: str | None = None) -> "Run":
        """Open ``path`` as a run of ``kind``; create it if new. Refuses another kind's folder."""
        path = Path(path)
        cfg = read_json(path / "config.json")
        if cfg is None:
            if path.exists() and any(path.iterdir()):
                raise ConfigError(f"{path} exists and is not a run folder.", "Choose a new --out folder.")
            path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            run.write_config(kind, config, device=device)
            run.set_status("queued", message="waiting to start")
            return run
        if cfg.get("kind") != kind:
            raise ConfigError(f"{path} holds a '{cfg.get('kind')}' run, not '{kind}'.", "Choose another --out folder; nothing was changed.")
        if not resume:
            raise ConfigError(f"{path} already holds a run.", "Pass --resume to continue it, or choose a new --out folder.")
        return cls(path)

    # -- config / status -----------------------------------------------------------
    def write_config(self, kind: str, config: dict, page: str | None = None, device: str | None = None) -> None:
        prov = provenance_record(device=device or config.get("device"), page=page)
        atomic_write_json(self.path / "config.json", {"kind": kind, "created": datetime.now(timezone.utc).isoformat(), **config,
                                                      PROVENANCE: prov})

    @property
    def config(self) -> dict:
        return read_json(self.path / "config.json", {}) or {}

    @property
    def provenance(self) -> dict:
        """What made this run (core.store.provenance.record); empty for runs older than the record."""
        return self.config.get(PROVENANCE) or {}

    @property
    def kind(self) -> str:
        return self.config.get("kind", "?")

    @property
    def id(self) -> str:
        return self.path.name

    # -- who owns it (a server shared by a class; core.serving.identity) --------------------------
    @property
    def owner(self) -> str | None:
        """The identity that started this run (``owner.json``, written once when it is created), None
        for runs started from the command line or on a one-user server."""
        try:
            return (read_json(self.path / OWNER_FILE, {}) or {}).get("user")
        except (json.JSONDecodeError, OSError, AttributeError):
            return None

    def set_owner(self, user: str) -> None:
        atomic_write_json(self.path / OWNER_FILE, {"user": user})

    @property
    def status(self) -> dict:
        try:
            return read_json(self.path / "status.json", {}) or {}
        except json.JSONDecodeError:  # never torn (atomic writes), but be robust to hand edits
            return {"state": "failed", "error": "status.json is unreadable"}

    def set_status(self, state: str | None = None, **fields: Any) -> dict:
        cur = self.status
        if state is not None:
            if state not in STATES:
                raise ValueError(state)
            cur["state"] = state
        cur.update(fields)
        cur["updated"] = time.time()
        if self.path.exists():
            atomic_write_json(self.path / "status.json", cur)
            if state in ENDED:
                _track(self.path, state=state)
        return cur

    # -- metrics -------------------------------------------------------------------
    def log_metrics(self, row: dict) -> None:
        row = {"time": time.time(), **row}
        with open(self.path / "metrics.jsonl", "a") as f:  # append-only; one line per write
            f.write(json.dumps(row, default=float) + "\n")
        _track(self.path, row=row)

    def metrics(self) -> pd.DataFrame:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return pd.DataFrame()
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill mid-write: skip it
                continue
        return pd.DataFrame(rows)

    # -- folders -------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def images(self) -> Path:
        p = self.path / "images"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def exists(self) -> bool:
        return (self.path / "config.json").exists()


def _track(path: Path, row: dict | None = None, state: str | None = None) -> None:
    """The one tracking hook: rows and run ends go on to TensorBoard/MLflow when the run's
    config asks for it (``log_with``; core.store.tracking), whatever loop wrote them."""
    from core.store import tracking

    if row is not None:
        tracking.forward(path, row)
    if state is not None:
        tracking.finish(path, state)


def list_runs(root: str | os.PathLike | None = None) -> list[Run]:
    root = Path(root) if root else runs_dir()
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.id, reverse=True)


def runs_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run: id, kind, state, progress, message, dataset, created."""
    rows = []
    for r in list_runs(root):
        st, cfg = r.status, r.config
        data = cfg.get("data") or {}
        rows.append(
            {
                "id": r.id,
                "kind": cfg.get("kind"),
                "state": st.get("state"),
                "step": st.get("step"),
                "total": st.get("total"),
                "message": st.get("message", ""),
                "dataset": data.get("dataset"),
                "profile": data.get("profile"),
                "created": cfg.get("created"),
                "path": str(r.path),
            }
        )
    return pd.DataFrame(rows, columns=["id", "kind", "state", "step", "total", "message", "dataset", "profile", "created", "path"])
