"""Rebuild BENCHMARKS.md from the sections in bench/results/*.md.

    python bench/assemble.py

Each benchmark script writes (or its author pastes) one section into bench/results/;
the summary at the top is kept in bench/results/_summary.md.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ORDER = ["_summary", "dataset", "cfg", "classifier", "sd", "app"]


def main() -> None:
    res = ROOT / "results"
    names = ORDER + sorted(p.stem for p in res.glob("*.md") if p.stem not in ORDER)
    parts = [(res / f"{n}.md").read_text().strip() for n in names if (res / f"{n}.md").exists()]
    text = "\n\n".join(parts).replace("](cfg_digits_sweep_class0.png", "](bench/results/cfg_digits_sweep_class0.png")
    (ROOT.parent / "BENCHMARKS.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
