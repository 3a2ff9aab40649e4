"""First (decode) and cached load of the CIFAR-10 JPEG copy, and the digits set.

    .venv/bin/python bench/dataset_load.py [--data-dir ../shared/data/cifar10] [--no-write]

The first load uses a fresh cache folder, so it always decodes all 60,000 JPEGs.
Writes bench/results/dataset.json (bench/record.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/cifar10"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/dataset.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["IMBALANCE_LAB_CACHE"] = cache
        from core.data import DataConfig, load_dataset

        cfg = DataConfig(dataset="cifar10", data_dir=args.data_dir)
        t = time.perf_counter()
        ds = load_dataset(cfg)
        first = time.perf_counter() - t
        cached = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            load_dataset(cfg)
            cached.append(time.perf_counter() - t)
        t = time.perf_counter()
        load_dataset(DataConfig())
        digits = time.perf_counter() - t
    print(f"cifar10 folder: {len(ds.train) + len(ds.test)} images")
    print(f"first load (decode + cache write): {first:.2f} s")
    print(f"cached load: best {min(cached):.3f} s, worst {max(cached):.3f} s over {args.repeats}")
    print(f"digits (embedded): {digits:.3f} s")
    if not args.no_write:
        results = {"images": len(ds.train) + len(ds.test), "first_s": first, "cached_best_s": min(cached),
                   "cached_worst_s": max(cached), "repeats": args.repeats, "digits_s": digits}
        print(f"wrote {write_result('dataset', results)}")


if __name__ == "__main__":
    main()
