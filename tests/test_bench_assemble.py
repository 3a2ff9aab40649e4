"""BENCHMARKS.md is built from bench/results/*.json + bench/templates/*.md, and checked in CI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_assemble", ROOT / "bench" / "assemble.py")
assemble = importlib.util.module_from_spec(spec)
spec.loader.exec_module(assemble)

MEASURED = {
    "name": "toy", "command": "python bench/toy.py", "date": "2026-11-30T12:00:00Z",
    "machine": {"cores": 2, "device": "cpu", "torch": "2.0"}, "commit": "0123456789abcdef", "dirty": True,
    "results": {"speed": {"images_per_s": 123.456}, "rows": [{"n": 7}]}, "markdown": "| a |\n|---|\n| 1 |",
}


def test_committed_benchmarks_md_matches_what_assemble_builds():
    out = subprocess.run([sys.executable, "bench/assemble.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_check_exits_1_and_prints_the_diff_when_the_file_is_stale(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "BENCHMARKS.md"
    stale.write_text(assemble.build().replace("Targets at a glance", "Targets at a glimpse"))
    monkeypatch.setattr(assemble, "OUT", stale)
    assert assemble.main(["--check"]) == 1
    printed = capsys.readouterr().out
    assert "-## Targets at a glimpse" in printed and "+## Targets at a glance" in printed
    assert assemble.main([]) == 0 and assemble.main(["--check"]) == 0  # rebuilding fixes it


def test_template_placeholders_provenance_and_default_rendering():
    other = {**MEASURED, "name": "zzz", "markdown": None, "dirty": False, "results": {"a": 1, "b": {"c": 0.5}}}
    templates = {
        "_summary": "# Title\n\ntoy runs at {{toy.results.speed.images_per_s:.1f}} images/s",
        "toy": "## Toy bench\n\nFirst row n = {{results.rows.0.n}}.\n\n{{markdown}}",
        "prose_only": "## Not measured\n\nNo GPU.",
    }
    text = assemble.build({"toy": MEASURED, "zzz": other}, templates)
    assert text == (
        "# Title\n\ntoy runs at 123.5 images/s\n\n"
        # names outside ORDER follow by name; a template without a results file is prose
        "## Not measured\n\nNo GPU.\n\n"
        "## Toy bench\n\n"
        "Command: `python bench/toy.py` · date 2026-11-30T12:00:00Z · machine: 2-core CPU, device cpu, torch 2.0 "
        "· commit 0123456789 (uncommitted changes) · raw: `bench/results/toy.json`\n\n"
        "First row n = 7.\n\n| a |\n|---|\n| 1 |\n\n"
        "## zzz\n\n"
        "Command: `python bench/toy.py` · date 2026-11-30T12:00:00Z · machine: 2-core CPU, device cpu, torch 2.0 "
        "· commit 0123456789 · raw: `bench/results/zzz.json`\n\n"
        "| result | value |\n|---|---|\n| a | 1 |\n| b.c | 0.5 |\n"
    )


def test_transcribed_figures_say_they_were_not_rerun():
    old = {**MEASURED, "transcribed": True, "note": "Copied by hand.", "date": "2026-11-28"}
    text = assemble.build({"toy": old}, {})
    assert "*Transcribed, not re-run:* figures measured on 2026-11-28 with `python bench/toy.py`" in text
    assert "recorded in commit 0123456789. Copied by hand." in text
    assert "Command:" not in text


def test_a_placeholder_that_names_nothing_is_an_error_naming_the_template():
    with pytest.raises(KeyError, match=r"bench/templates/toy.md: \{\{results.speed.fps\}\}: no 'fps'"):
        assemble.build({"toy": MEASURED}, {"toy": "## T\n\n{{results.speed.fps}}"})


def test_every_committed_result_names_its_command_date_machine_and_commit():
    files = sorted((ROOT / "bench" / "results").glob("*.json"))
    assert files
    for path in files:
        r = json.loads(path.read_text())
        assert r["command"] and r["date"] and r["machine"] and r["results"], path.name
        assert len(r["commit"] or "") == 40, f"{path.name}: commit must be a full hash"
        if r.get("transcribed"):
            assert r.get("note"), f"{path.name}: a transcription says where its figures came from"
