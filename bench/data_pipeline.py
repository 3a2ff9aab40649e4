"""Data pipeline benchmark: in-memory on-device augmentation vs ImageFolder + DataLoader + PIL.

Both sides produce normalised float batches (B, 3, 32, 32) with random crop (padding 4)
+ horizontal flip from the same CIFAR-10 JPEG folder, side by side in one run:

  ours  core.train.augment.BatchAugment on the decoded uint8 train split held in memory
        (decoding happens once and is cached under .cache/; not counted)
  PIL   torchvision.datasets.ImageFolder + DataLoader(num_workers=2) + transforms
        RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize

Optionally also times a few ResNet18 (CIFAR stem) training steps on this machine.

    flock /tmp/lab-cpu.lock .venv/bin/python bench/data_pipeline.py [--data-dir DIR] [--resnet18-batches 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.record import write_result  # noqa: E402

def bench_ours(images: torch.Tensor, batch_size: int, epochs: int, device: torch.device) -> float:
    from core.train.augment import BatchAugment, channel_stats

    mean, std = channel_stats(images[:5000])
    aug = BatchAugment(mean, std, pad=4, flip=True)
    data = images.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    aug(data[:batch_size], generator=g)  # warm-up
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(data), device=device, generator=g)
        for i in range(0, len(data), batch_size):
            x = aug(data[perm[i : i + batch_size]], generator=g)
            n += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def bench_pil(folder: Path, batch_size: int, n_images: int, workers: int) -> float:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    dl = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=False)
    it = iter(dl)
    next(it)  # worker start-up is not counted
    n, t0 = 0, time.perf_counter()
    for x, _ in it:
        n += len(x)
        if n >= n_images:
            break
    return n / (time.perf_counter() - t0)


def bench_resnet18(images: torch.Tensor, batches: int, batch_size: int, device: torch.device) -> float:
    from core.train.augment import BatchAugment, channel_stats
    from core.nets.resnet import build_classifier

    mean, std = channel_stats(images[:5000])
    aug = BatchAugment(mean, std)
    net = build_classifier("resnet18", 10, 3, cifar_stem=True).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    y = torch.randint(0, 10, (batch_size,), device=device)
    data = images[: batch_size * (batches + 1)].to(device)

    def step(i):
        x = aug(data[i * batch_size : (i + 1) * batch_size])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(1, batches + 1):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * batch_size / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "cifar10"), help="CIFAR-10 ImageFolder root (train/<class>/*.jpg)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--pil-images", type=int, default=20000, help="images drawn from the PIL pipeline")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2, help="epochs of the in-memory pipeline")
    p.add_argument("--resnet18-batches", type=int, default=3, help="ResNet18 training steps to time (0 = skip)")
    p.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/data_pipeline.json")
    args = p.parse_args()

    from core.data.loading import DataConfig, load_dataset

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    ds = load_dataset(DataConfig(dataset="cifar10", data_dir=args.data_dir))
    load_s = time.perf_counter() - t0
    images = ds.train.images
    print(f"loaded {len(images)} train images in {load_s:.1f} s (decoded once, then cached)", flush=True)
    threads = torch.get_num_threads()
    ours_default = bench_ours(images, args.batch_size, args.epochs, device)
    print(f"ours ({threads} torch threads): {ours_default:,.0f} images/s", flush=True)
    torch.set_num_threads(1)
    ours = bench_ours(images, args.batch_size, args.epochs, device)
    torch.set_num_threads(threads)
    print(f"ours (1 torch thread): {ours:,.0f} images/s", flush=True)
    pil = bench_pil(Path(args.data_dir) / "train", args.batch_size, args.pil_images, args.workers)
    print(f"PIL : {pil:,.0f} images/s", flush=True)
    ours_best = max(ours, ours_default)
    ratio = ours_best / pil
    print(f"ratio {ratio:.1f}x (target >= 20x)")
    r18 = None
    if args.resnet18_batches:
        r18 = bench_resnet18(images, args.resnet18_batches, 128, device)
        print(f"ResNet18 training ({device.type}): {r18:,.1f} images/s")
    if args.no_write:
        return 0
    thread_note = ("On these 2 shared cores, 2 torch threads were faster in this run; while other processes loaded the machine, "
                   "the same small tensor ops were seen up to 28x slower with 2 threads than with 1, so both are reported."
                   if ours_default >= ours else
                   "One torch thread was faster than several in this run: on 2 shared cores, intra-op threads contend with other processes for ops this small.")
    body = f"""### Data pipeline: in-memory on-device augmentation vs PIL DataLoader

Data: CIFAR-10 JPEG ImageFolder `{args.data_dir}/train` (50,000 images); batch {args.batch_size}; random crop 32 with padding 4 + horizontal flip + normalise on both sides.

| pipeline | images/s |
|---|---|
| ours: in-memory uint8 tensor, `core.train.augment.BatchAugment` per batch on {device.type} ({args.epochs} epochs), 1 torch thread | {ours:,.0f} |
| ours, same, {threads} torch threads | {ours_default:,.0f} |
| torchvision `ImageFolder` + `DataLoader(num_workers={args.workers})` + PIL transforms ({args.pil_images:,} images) | {pil:,.0f} |
| **ratio (ours, best of the two / PIL)** | **{ratio:.1f}×** (target ≥ 20×: {"met" if ratio >= 20 else "MISSED"}) |

{thread_note}
The one-time decode of the JPEG folder into the uint8 cache is not counted (it took {load_s:.1f} s in this run{"; the cache already existed" if load_s < 5 else ""})."""
    if r18 is not None:
        body += f"""

### ResNet18 training throughput ({device.type})

ResNet18 (CIFAR stem, 11.2 M params), batch 128 of 32x32 images, SGD Nesterov step including augmentation, {args.resnet18_batches} timed steps after one warm-up step:
**{r18:,.1f} images/s on {device.type}**{" (fp32)" if device.type == "cpu" else " (bf16 autocast)"}. One CIFAR-10 epoch would take {50000 / r18 / 60:,.1f} min here, which is why ResNet18/50 runs belong to a GPU and the CPU presets use the small ResNet.
No GPU was lent to this task, so end-to-end GPU images/s for ResNet18 is not recorded yet; `bench/data_pipeline.py` records it when run on a GPU."""
    results = {"ours_1_thread": ours, f"ours_{threads}_threads": ours_default, "pil": pil, "ratio": ratio, "load_s": load_s,
               f"resnet18_{device.type}_images_per_s": r18, "batch_size": args.batch_size, "pil_images": args.pil_images}
    print(f"wrote {write_result('data_pipeline', results, markdown=body, device=device.type)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
