"""Build BENCHMARKS.md from bench/results/*.json and the prose templates in bench/templates/.

    python bench/assemble.py            # rewrite BENCHMARKS.md
    python bench/assemble.py --check    # exit 1 and print a diff when BENCHMARKS.md is out of date

Every figure comes from a results file written by ``bench.record.write_result`` (or, for
figures measured before that existed, transcribed by hand with ``"transcribed": true``, the
commit that recorded them and a note). Each section is:

    ## <title>                      first line of bench/templates/<name>.md (default: the name)
    <provenance>                    added here: command, date, machine, commit (or the transcription)
    <the rest of the template>      with {{markdown}} and {{results.a.b}} / {{results.a.b:.2f}} filled in

A results file without a template gets a default rendering (its markdown, else a table of its
results). A template without a results file is prose (e.g. what was not measured). The
summary template (``_summary.md``) comes first and may quote any file's values as
``{{<name>.results.a.b}}``. Sections follow ORDER; files not named there follow, by name.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TEMPLATES = ROOT / "bench" / "templates"
OUT = ROOT / "BENCHMARKS.md"
SUMMARY = "_summary"
# Stated order: data, CFG training/sampling, classifier and studies, SD, app.
ORDER = [
    "dataset", "data_pipeline",
    "cfg_digits", "cfg_vs_peer", "cfg_flops", "classifier_flops", "tail_cfg", "judge_split", "real_gate", "gpu_cfg_cifar",
    "quick_answers", "quick_4x_compare", "cifar_cpu", "cifar_cpu_4x", "cifar_recipe", "cifar_cpu_2026_12_07", "quick_recipe", "quick_study", "quick_study_2026_11_28",
    "sd_tiny", "sd_not_measured",
    "app", "app_load", "input_sweep", "trajectory",
]
PLACEHOLDER = re.compile(r"\{\{\s*([\w.\-]+)(?::([^}]*))?\s*\}\}")


def load_results(folder: Path = RESULTS) -> dict[str, dict]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except ValueError as exc:
            raise SystemExit(f"{path} is not valid JSON ({exc}); fix or re-run its benchmark.") from exc
    return out


def load_templates(folder: Path = TEMPLATES) -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.md"))}


def _lookup(path: str, own: dict | None, every: dict[str, dict], where: str):
    keys = path.split(".")
    if own is not None and keys[0] in own:
        value = own
    elif keys[0] in every:
        value, keys = every[keys[0]], keys[1:]
    else:
        raise KeyError(f"{where}: {{{{{path}}}}} names nothing (no key '{keys[0]}' and no results file of that name)")
    for k in keys:
        if isinstance(value, list) and k.isdigit():
            value = value[int(k)]
        elif isinstance(value, dict) and k in value:
            value = value[k]
        else:
            raise KeyError(f"{where}: {{{{{path}}}}}: no '{k}'")
    return value


def fill(template: str, own: dict | None, every: dict[str, dict], where: str) -> str:
    """Replace {{markdown}}, {{results.a.b}} (own file) and {{name.results.a.b}} (any file)."""

    def sub(m: re.Match) -> str:
        value = _lookup(m.group(1), own, every, where)
        spec = m.group(2)
        return format(value, spec) if spec else str(value).strip()

    return PLACEHOLDER.sub(sub, template)


def machine_line(m: dict) -> str:
    parts = [f"{m['cores']}-core CPU" if m.get("cores") else None, m.get("gpu"), f"device {m['device']}" if m.get("device") else None,
             f"torch {m['torch']}" if m.get("torch") else None, f"Python {m['python']}" if m.get("python") else None,
             m.get("note")]
    return ", ".join(p for p in parts if p)


def provenance(name: str, r: dict) -> str:
    commit = (r.get("commit") or "unknown")[:10]
    if r.get("transcribed"):
        return (f"*Transcribed, not re-run:* figures measured on {r.get('date', '?')} with `{r.get('command', '?')}` "
                f"({machine_line(r.get('machine', {}))}), recorded in commit {commit}. {r.get('note', '')}".rstrip())
    dirty = " (uncommitted changes)" if r.get("dirty") else ""
    return (f"Command: `{r.get('command', '?')}` · date {r.get('date', '?')} · machine: {machine_line(r.get('machine', {}))} "
            f"· commit {commit}{dirty} · raw: `bench/results/{name}.json`")


def _flat(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += _flat(v, f"{prefix}{k}.")
        elif not isinstance(v, list):
            rows.append((f"{prefix}{k}", v))
    return rows


def default_body(r: dict) -> str:
    if r.get("markdown"):
        return r["markdown"].strip()
    rows = _flat(r.get("results", {}))
    return "\n".join(["| result | value |", "|---|---|", *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows)])


def section(name: str, r: dict | None, template: str | None, every: dict[str, dict]) -> str:
    if template is None:
        head, rest = f"## {r.get('name', name)}", default_body(r)
    else:
        lines = template.strip().splitlines()
        if lines and lines[0].startswith("#"):
            head, rest = lines[0], "\n".join(lines[1:]).strip()
        else:
            head, rest = f"## {name}", "\n".join(lines).strip()
        rest = fill(rest, r, every, f"bench/templates/{name}.md")
    parts = [head]
    if r is not None:
        parts.append(provenance(name, r))
    if rest:
        parts.append(rest)
    return "\n\n".join(parts)


def build(results: dict[str, dict] | None = None, templates: dict[str, str] | None = None) -> str:
    results = load_results() if results is None else results
    templates = load_templates() if templates is None else templates
    names = set(results) | (set(templates) - {SUMMARY})
    ordered = [n for n in ORDER if n in names] + sorted(names - set(ORDER))
    parts = []
    if SUMMARY in templates:
        parts.append(fill(templates[SUMMARY].strip(), None, results, f"bench/templates/{SUMMARY}.md"))
    parts += [section(n, results.get(n), templates.get(n), results) for n in ordered]
    return "\n\n".join(parts).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 with a diff when BENCHMARKS.md differs")
    args = ap.parse_args(argv)
    text = build()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), "BENCHMARKS.md (committed)", "BENCHMARKS.md (built)")
        sys.stdout.writelines(diff)
        print("\nBENCHMARKS.md is out of date: run `python bench/assemble.py` and commit it.")
        return 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
