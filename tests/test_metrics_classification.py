"""Classification metrics against scikit-learn on fixed predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from core.errors import DataError
from core.metrics.classification import classification_report

# fixed labels and predictions: 4 classes, class 3 never predicted, class 2 over-predicted
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 0, 1, 2, 3])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 2, 2, 2, 2, 0, 1, 0, 1, 2, 2])


def test_report_matches_sklearn():
    r = classification_report(Y_TRUE, Y_PRED, num_classes=4, minority=[2, 3])
    np.testing.assert_allclose(r["per_class_f1"], f1_score(Y_TRUE, Y_PRED, average=None, zero_division=0), atol=1e-6)
    np.testing.assert_allclose(r["per_class_precision"], precision_score(Y_TRUE, Y_PRED, average=None, zero_division=0), atol=1e-6)
    np.testing.assert_allclose(r["per_class_recall"], recall_score(Y_TRUE, Y_PRED, average=None, zero_division=0), atol=1e-6)
    assert r["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro", zero_division=0), abs=1e-6)
    assert r["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED), abs=1e-6)
    assert r["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED), abs=1e-6)
    assert r["confusion_matrix"] == confusion_matrix(Y_TRUE, Y_PRED, labels=range(4)).tolist()
    f1 = f1_score(Y_TRUE, Y_PRED, average=None, zero_division=0)
    assert r["minority_f1"] == pytest.approx((f1[2] + f1[3]) / 2, abs=1e-6)
    assert r["per_class_f1"][3] == 0.0  # never predicted
    assert r["n"] == len(Y_TRUE)


def test_random_predictions_match_sklearn():
    g = np.random.default_rng(1)
    t = g.integers(0, 10, 500)
    p = np.where(g.random(500) < 0.5, t, g.integers(0, 10, 500))
    r = classification_report(t, p, 10)
    np.testing.assert_allclose(r["per_class_f1"], f1_score(t, p, average=None), atol=1e-6)
    assert r["confusion_matrix"] == confusion_matrix(t, p).tolist()
    assert r["minority_f1"] is None


def test_test_set_missing_a_class_is_refused():
    t = np.array([0, 0, 1, 1])
    with pytest.raises(DataError, match=r"no images of class\(es\) \['c'\]") as e:
        classification_report(t, t, 3, classes=["a", "b", "c"])
    assert "Fix:" in str(e.value)
