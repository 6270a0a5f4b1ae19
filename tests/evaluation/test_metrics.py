"""Video-level classification metrics against hand-computed cases."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from videolstm.evaluation.metrics import classification_report

NAMES = ["walk", "run", "jump"]


def _onehot(pred: list[int], k: int = 3) -> np.ndarray:
    probs = np.full((len(pred), k), 0.1)
    probs[np.arange(len(pred)), pred] = 0.8
    return probs


def test_report_matches_hand_computed_accuracies_and_confusion():
    # true:  walk walk walk run run jump
    # pred:  walk walk run  run walk jump
    labels = np.array([0, 0, 0, 1, 1, 2])
    result = classification_report(_onehot([0, 0, 1, 1, 0, 2]), labels, NAMES)
    # correct: 2 of 3 walk, 1 of 2 run, 1 of 1 jump -> top-1 = 4/6
    assert result.accuracy == pytest.approx(4 / 6)
    # mean class accuracy = (2/3 + 1/2 + 1) / 3 = 13/18
    assert result.mean_class_accuracy == pytest.approx(13 / 18)
    assert result.per_class_accuracy == pytest.approx({"walk": 2 / 3, "run": 0.5, "jump": 1.0})
    np.testing.assert_array_equal(result.confusion, [[2, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(result.support, [3, 2, 1])
    np.testing.assert_array_equal(result.predictions, [0, 0, 1, 1, 0, 2])
    assert result.metrics() == {"test/accuracy": pytest.approx(4 / 6), "test/mean_class_accuracy": pytest.approx(13 / 18)}


def test_class_absent_from_test_set_is_left_out_of_the_mean_without_nan():
    # jump never occurs as a true label, but is predicted once (a wrong prediction for run).
    labels = np.array([0, 0, 1, 1])
    result = classification_report(_onehot([0, 1, 1, 2]), labels, NAMES)
    assert set(result.per_class_accuracy) == {"walk", "run"}
    # (1/2 + 1/2) / 2 classes present = 0.5 (a NaN-mean over 3 classes would be NaN or 1/3)
    assert result.mean_class_accuracy == pytest.approx(0.5)
    assert result.accuracy == pytest.approx(0.5)
    assert result.confusion[1, 2] == 1 and result.confusion[2].sum() == 0
    assert np.isfinite(list(result.per_class_accuracy.values())).all()


def test_argmax_ties_go_to_the_lowest_class_index():
    probs = np.array([[0.4, 0.4, 0.2]])
    assert classification_report(probs, np.array([1]), NAMES).predictions.tolist() == [0]


def test_csv_helpers_write_the_tables(tmp_path):
    labels = np.array([0, 0, 1])
    result = classification_report(_onehot([0, 1, 1]), labels, ["a,b", "c", "d"])
    per_class = list(csv.reader(result.per_class_to_csv(tmp_path / "pc.csv").open()))
    assert per_class[0] == ["class", "index", "support", "correct", "accuracy"]
    assert per_class[1] == ["a,b", "0", "2", "1", "0.500000"]  # comma in a name survives quoting
    assert per_class[2] == ["c", "1", "1", "1", "1.000000"]
    assert per_class[3] == ["d", "2", "0", "0", ""]  # absent class: empty, not "nan"
    confusion = list(csv.reader(result.confusion_to_csv(tmp_path / "sub" / "cm.csv").open()))
    assert confusion == [
        ["true\\predicted", "a,b", "c", "d"],
        ["a,b", "1", "1", "0"],
        ["c", "0", "1", "0"],
        ["d", "0", "0", "0"],
    ]


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.ones((2, 3)), np.array([0, 3]), "labels must lie"),
        (np.ones((2, 2)), np.array([0, 1]), "class names"),
        (np.ones((2, 3)), np.array([0]), "labels must be"),
        (np.array([[np.nan, 0, 0]]), np.array([0]), "NaN"),
    ],
)
def test_bad_inputs_are_rejected_with_a_clear_message(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_report(probs, labels, NAMES)


@pytest.mark.parametrize(
    "name, cell",
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Basketball", "Basketball"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_names_that_start_a_formula_become_text_cells(name, cell):
    from videolstm.evaluation.metrics import csv_text

    assert csv_text(name) == cell


def test_csv_helpers_escape_class_names(tmp_path):
    result = classification_report(np.eye(2), np.array([0, 1]), ["=HYPERLINK(1)", "ok"])
    with open(result.per_class_to_csv(tmp_path / "per_class.csv"), newline="") as fh:
        assert [row[0] for row in csv.reader(fh)] == ["class", "'=HYPERLINK(1)", "ok"]
    with open(result.confusion_to_csv(tmp_path / "confusion.csv"), newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["true\\predicted", "'=HYPERLINK(1)", "ok"] and rows[1][0] == "'=HYPERLINK(1)"
