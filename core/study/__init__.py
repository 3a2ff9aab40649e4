"""A study: one TOML config -> the paper's tables (the experiment pipeline, ``python -m core experiment``).

A study is a list of cells (core.study.graph) run by an executor:

    cfg-train__seed<k>                         the CFG diffusion model of seed k (trained once, sampled per w)
    fill__<fill>__seed<k>                      the seed's generated images + their generation metric
                                               (FID on Inception-v3, or the labelled judge substitute; KID)
    clf__<method>__<classifier>__seed<k>       one classifier trained on the (partly) filled set
    clf__posthoc-adjust__<classifier>__seed<k> the `none` model's test logits, shifted by −τ·log π

Every cell's work is ``run_cell`` (core.study.cells; importable, JSON payload), so another executor can run
the same cells in other processes or on a cluster. Methods: the fills (none, oversample,
mixup, cutmix, cfg, sd), the long-tail losses (reweight, logit-adjust), the post-hoc
adjustment (posthoc-adjust) and combinations ``fill+loss`` (e.g. ``cfg+logit-adjust``),
which fill each class only ``partial_fill`` of the way (in log scale) and let the loss
correct the rest, reusing that seed's generated images.

Fairness: under ``budget = "steps"`` (the default) every classifier of a study runs the
same number of optimizer steps at the same batch size (``classifier.steps``, or what the
largest training set needs for ``classifier.epochs`` epochs), with the same warm-up in
steps; ``budget = "epochs"`` is the paper's protocol (smaller sets get fewer steps). Each
seed draws its own imbalanced subset (the minority classes stay fixed) unless
``fixed_subset = true``. Rows report mean, std and a Student-t 95 % CI over seeds, and a
paired comparison against every method in ``compare_to`` (core.study.stats).

Generator gate (core.study.gate): every CFG / SD fill and seed records ``gate`` (the judge's class
consistency on its 3 most-filled classes, its precision, those classes' near-copy rate, against
the ``[gate]`` thresholds); a row trained on a fill below its gate is ``below_gate``: its figures
stay, its verdicts do not count (core.study.rows). That is a row state, not a failure.

    STUDY/config.json        kind "study" + the StudyConfig (a folder holds one study)
    STUDY/status.json        progress, and every cell's state and device ("cells")
    STUDY/cells/<cell id>/   the cell's results.json (a classifier cell is a classifier run folder)
    STUDY/sets/<fill>__seed<k>.safetensors   the generated images (not the real ones)
    STUDY/cfg/seed<k>/       the CFG diffusion run for that seed
    STUDY/curves/<cell id>/steps<k>/   a classifier cell's shorter runs of its budget curve (core.study.curves)
    STUDY/results.csv, results.json   one row per method × classifier (see study_rows)

Running a study on its own folder again resumes it: finished cells return at once and
failed or interrupted ones run again. A folder holding another study (or anything else)
is refused and left untouched.

The package, one part of a study a file: config (StudyConfig, Variant, the method tables),
presets, plan (cells, budgets, fill sizes, folder paths), graph (Cell, CellTask, the serial
executor), executors (lanes, GPUs, Ray), cells (the work of each cell), gating (one fill's gate
figures), lock (one process per folder), run (the study folder, run_study, load_results), rows
(results.json's rows), stats (paired verdicts), gate (the gate's rule), gap (share of gap),
curves (budget curves), progress (a running study, read from its folder), start (starting one
from the app), tables (the Results page's tables of runs and studies), report (the HTML report).
"""
