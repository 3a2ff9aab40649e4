"""Classification metrics on the balanced test set (torchmetrics).

accuracy          = Σ_c TP_c / N
balanced accuracy = (1/C) Σ_c recall_c              (= macro recall)
precision_c       = TP_c / (TP_c + FP_c),  recall_c = TP_c / (TP_c + FN_c)
F1_c              = 2·P_c·R_c / (P_c + R_c)         (0 when the class is never predicted
                                                       nor present, as scikit-learn's default)
macro-F1          = (1/C) Σ_c F1_c
minority F1       = mean of F1_c over the classes the profile shrank most
confusion[i][j]   = number of test images of true class i predicted as j
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from core.errors import DataError


def check_test_classes(y_true, num_classes: int, classes: list[str] | None = None) -> None:
    """Refuse a test set that lacks a class: its recall/F1 would be undefined."""
    counts = torch.bincount(torch.as_tensor(y_true).long().flatten(), minlength=num_classes)
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if missing:
        names = [classes[c] for c in missing] if classes else missing
        raise DataError(
            f"The test set has no images of class(es) {names}, so their recall and F1 are undefined.",
            "Give every class at least one test image (e.g. add files to test/<class>/ or raise test_fraction).",
        )


def classification_report(y_true, y_pred, num_classes: int, minority: list[int] | None = None, classes: list[str] | None = None) -> dict:
    """Accuracy, balanced accuracy, macro/minority F1, per-class P/R/F1 and confusion matrix."""
    t = torch.as_tensor(y_true).long().flatten()
    p = torch.as_tensor(y_pred).long().flatten()
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    check_test_classes(t, num_classes, classes)
    kw = dict(num_classes=num_classes, validate_args=True)
    f1 = multiclass_f1_score(p, t, average="none", **kw)
    minority = sorted(set(int(c) for c in (minority or [])))
    return {
        "n": len(t),
        "accuracy": float(multiclass_accuracy(p, t, average="micro", **kw)),
        "balanced_accuracy": float(multiclass_recall(p, t, average="macro", **kw)),
        "macro_f1": float(f1.mean()),
        "minority_f1": float(f1[minority].mean()) if minority else None,
        "minority_classes": minority,
        "per_class_precision": multiclass_precision(p, t, average="none", **kw).tolist(),
        "per_class_recall": multiclass_recall(p, t, average="none", **kw).tolist(),
        "per_class_f1": f1.tolist(),
        "confusion_matrix": multiclass_confusion_matrix(p, t, **kw).tolist(),
    }
