"""Classification metrics at their edges (issue 26: tests that fail when the code is wrong).

From ``classification_report``'s contract: probabilities (N, K) that must be finite, integer
labels in [0, K) (integral floats such as 2.0 are class 2, 2.5 is no class), an empty test set
gives accuracies 0.0 and an all-zero int64 confusion matrix, and the CSV writers create the
folders they need.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from videolstm.evaluation.metrics import ClassificationResult, classification_report

NAMES = ["walk", "run", "jump"]
PROBS = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])


def test_integral_float_labels_are_the_same_classes_as_integer_labels():
    as_int = classification_report(PROBS, np.array([0, 1, 2, 1]), NAMES)
    as_float = classification_report(PROBS, np.array([0.0, 1.0, 2.0, 1.0]), NAMES)
    np.testing.assert_array_equal(as_float.confusion, as_int.confusion)
    assert as_float.accuracy == as_int.accuracy == 0.75


@pytest.mark.parametrize("labels", [[0.0, 1.5, 2.0, 1.0], [0.5, 1.0, 2.0, 1.0], [0.0, 1.0, 2.0, 0.999]])
def test_fractional_labels_are_refused_as_not_class_indices(labels):
    with pytest.raises(ValueError, match=r"^labels must be integer class indices$"):
        classification_report(PROBS, np.array(labels), NAMES)


def test_one_dimensional_probabilities_are_refused_naming_the_expected_shape():
    with pytest.raises(ValueError, match=r"^probabilities must be \(N, K\), got shape \(3,\)$"):
        classification_report(np.array([0.2, 0.3, 0.5]), np.array([0]), NAMES)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_a_missing_or_infinite_score_is_refused(bad):
    probs = [[0.8, 0.1, 0.1], [0.1, bad, 0.1]]
    with pytest.raises(ValueError, match=r"^probabilities contain NaN or inf$"):
        classification_report(probs, np.array([0, 1]), NAMES)


@pytest.mark.parametrize("names", [NAMES, []], ids=["3-classes", "no-class"])
def test_an_empty_test_set_gives_zero_accuracies_and_an_all_zero_confusion(names):
    k = len(names)
    result = classification_report(np.zeros((0, k)), np.zeros(0, dtype=np.int64), names)
    assert result.accuracy == 0.0 and result.mean_class_accuracy == 0.0
    assert result.per_class_accuracy == {}
    assert result.predictions.shape == (0,) and result.predictions.dtype == np.int64
    assert result.confusion.shape == (k, k) and result.confusion.dtype == np.int64
    assert not result.confusion.any() and result.num_videos == 0


def test_counts_are_int64():
    result = classification_report(PROBS, np.array([0, 1, 2, 1]), NAMES)
    assert result.confusion.dtype == np.int64 and result.support.dtype == np.int64
    assert result.predictions.dtype == np.int64


def test_the_csv_writers_create_missing_folders(tmp_path):
    result = classification_report(PROBS, np.array([0, 1, 2, 1]), NAMES)
    per_class = result.per_class_to_csv(tmp_path / "a" / "b" / "per_class.csv")
    confusion = result.confusion_to_csv(tmp_path / "c" / "d" / "confusion.csv")
    with per_class.open(newline="") as fh:
        assert [row[0] for row in csv.reader(fh)] == ["class", *NAMES]
    with confusion.open(newline="") as fh:
        assert list(csv.reader(fh))[2] == ["run", "1", "1", "0"]


def test_a_confusion_matrix_that_does_not_match_its_class_names_is_not_written(tmp_path):
    """One line per true class: a result whose matrix has fewer rows than names is refused, not truncated."""
    result = ClassificationResult(
        accuracy=1.0,
        mean_class_accuracy=1.0,
        per_class_accuracy={},
        confusion=np.eye(2, dtype=np.int64),
        support=np.ones(2, dtype=np.int64),
        predictions=np.arange(2),
        class_names=tuple(NAMES),
    )
    with pytest.raises(ValueError):
        result.confusion_to_csv(tmp_path / "confusion.csv")


def test_the_headline_numbers_are_named_with_their_prefix():
    result = classification_report(PROBS, np.array([0, 1, 2, 2]), NAMES)
    assert result.metrics() == {"test/accuracy": 0.75, "test/mean_class_accuracy": pytest.approx((1 + 1 + 0.5) / 3)}
    assert set(result.metrics("val/")) == {"val/accuracy", "val/mean_class_accuracy"}
