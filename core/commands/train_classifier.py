"""``python -m core train-classifier``: train one classifier on a (rebalanced) dataset."""

from __future__ import annotations

import json

from core.callbacks import Callbacks, ProgressBar
from core.commands.data_flags import add_data_arguments, add_tracking_argument, data_defaults, data_dict, log_with
from core.commands.config_file import add_config_argument, without
from core.generators.registry import METHODS
from core.nets.resnet import ARCHS

HELP = "Train a classifier (small ResNet / ResNet18 / ResNet50) on an imbalanced or rebalanced set and report test metrics."


def add_arguments(p) -> None:
    add_data_arguments(p)
    g = p.add_argument_group("classifier")
    g.add_argument("--arch", default="small", choices=list(ARCHS), help="network: tiny or small (CPU), resnet18, resnet50")
    g.add_argument("--no-cifar-stem", action="store_true", help="ResNet18/50: keep ImageNet's 7x7/stride-2 conv and max-pool (default: 3x3 stride-1 stem)")
    g.add_argument("--epochs", type=int, default=30, help="passes over the training set")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps in all, instead of --epochs (the LR schedule spans them)")
    g.add_argument("--loss", default="ce", choices=["ce", "reweight", "logit-adjust"],
                   help="ce; reweight: class-balanced loss (Cui et al. 2019); logit-adjust: logit-adjusted CE (Menon et al. 2021)")
    g.add_argument("--cb-beta", type=float, default=0.9999, help="β of the class-balanced loss (effective number)")
    g.add_argument("--la-tau", type=float, default=1.0, help="τ of the logit adjustment")
    g.add_argument("--batch-size", type=int, default=128, help="images per optimizer step (over all processes)")
    g.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate (after warm-up, cosine-decayed to 0)")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up length in epochs")
    g.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing ε (0 = off)")
    g.add_argument("--synthetic-weight", type=float, default=1.0, help="loss weight of generated images (real = 1)")
    g.add_argument("--train-mix", default="none", choices=["none", "mixup", "cutmix"], help="training-time torchvision v2 MixUp/CutMix on every batch")
    g.add_argument("--method", default="none", choices=list(METHODS), help="how to fill minority classes before training")
    g.add_argument("--method-params", default="{}", help='generator keyword arguments as JSON, e.g. \'{"lam": 0.6}\' or \'{"run_dir": "runs/cfg1", "w": 7.5}\'')
    g.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    g.add_argument("--train-seed", type=int, default=0, help="seed for weights, batch order, augmentation and generation")
    p.add_argument("--out", default=None, help="run folder (default: a new folder under runs/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    add_tracking_argument(p)
    add_config_argument(p, "classifier", config_defaults, known=_known)


def _known() -> list[str]:
    """The keys a classifier run's config.json holds: ClassifierConfig's fields and what the run recorded."""
    from core.train.classifier import ClassifierConfig

    return [*ClassifierConfig.__dataclass_fields__, *RECORDED]


# flag dest -> ClassifierConfig field, where the names agree
FIELDS = ("arch", "epochs", "steps", "loss", "cb_beta", "la_tau", "batch_size", "lr", "weight_decay", "warmup_epochs", "label_smoothing",
          "synthetic_weight", "train_mix", "device", "log_with")
# what train_classifier adds to config.json besides the ClassifierConfig (not settings)
RECORDED = ("kind", "created", "balance_method", "balance_params", "balance_target", "train_set", "schedule")


def config_defaults(d: dict) -> dict:
    """A saved classifier run's config.json -> this command's flag defaults (``--config``)."""
    out = {**data_defaults(d.get("data") or {}), **{k: d[k] for k in FIELDS if k in d}}
    if "seed" in d:
        out["train_seed"] = d["seed"]
    if "cifar_stem" in d:
        out["no_cifar_stem"] = not d["cifar_stem"]
    if "balance_method" in d:
        out["method"] = d["balance_method"]
    if "balance_params" in d:
        out["method_params"] = json.dumps(d["balance_params"] or {})
    return out


def run(args) -> int:
    from datetime import datetime

    from core.settings.config_check import CLI_METHOD_PARAMS, check_kwargs
    from core.errors import ConfigError

    from core.generators.balance import balanced_train_set, train_set_info
    from core.data.loading import prepare
    from core.paths import runs_dir
    from core.train.classifier import KIND, ClassifierConfig, train_classifier

    try:
        params = json.loads(args.method_params)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--method-params is not valid JSON ({exc}).", 'Pass e.g. \'{"lam": 0.6}\'.')
    params = check_kwargs(f"method_params.{args.method}", params, where=f"--method-params ({args.method})", schema=CLI_METHOD_PARAMS)
    # --config: the file's settings (also those without a flag), then every flag's value over them
    fields = {k: getattr(args, k) for k in FIELDS}
    fields.update(cifar_stem=not args.no_cifar_stem, seed=args.train_seed, log_with=log_with(args))
    cfg = ClassifierConfig.from_dict({**without(args.config_dict, *RECORDED), **fields, "data": data_dict(args)})
    cfg.validate()
    out = args.out
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = runs_dir() / f"{stamp}-{KIND}-{args.dataset}-{args.arch}-{args.method}"
        i = 1
        while out.exists():
            i += 1
            out = runs_dir() / f"{stamp}-{KIND}-{args.dataset}-{args.arch}-{args.method}-{i}"
    quiet = args.json or args.verbosity < 0
    bar = ProgressBar("train-classifier", disable=quiet)
    cb = Callbacks(
        on_progress=bar,
        on_metrics=None if quiet else (lambda row: bar.write(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))),
    )
    # The loop takes a ready training set: fill the minority classes here first.
    ds, imbalanced = prepare(cfg.data)
    train_set = balanced_train_set(imbalanced, args.method, params, seed=cfg.seed, progress=lambda d, t: cb.progress(d, t, f"generating {args.method} images"),
                                   should_stop=cb.should_stop)
    try:
        res = train_classifier(cfg, out, callbacks=cb, resume=args.resume, train_set=train_set, dataset=ds,
                               train_set_info=train_set_info(args.method, params))
    finally:
        bar.close()
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"run folder: {out}")
    print(f"{res['steps']} steps at batch {res['batch_size']}: {res['images_seen']} images seen, {res['train_size']} training images, loss {res['loss']}")
    print(f"accuracy {res['accuracy']:.4f}  balanced {res['balanced_accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  minority-F1 {res['minority_f1']:.4f}")
    for name, f1 in zip(res["classes"], res["per_class_f1"]):
        print(f"  {name:>12}  F1 {f1:.3f}")
    return 0
