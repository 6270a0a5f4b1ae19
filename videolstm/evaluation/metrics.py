"""Video-level classification metrics.

Pure numpy: class probabilities and labels in, a :class:`ClassificationResult` out, which can
write its per-class table and confusion matrix as CSV files (the Prefect task logs them to
MLflow as artifacts).

Conventions
-----------
- The predicted class is ``argmax`` of the probabilities; ties go to the lowest class index
  (numpy's ``argmax``).
- Classes absent from the test set (support 0) have no accuracy: they are left out of
  ``per_class_accuracy`` (a dict of the classes that *are* present) and out of the mean class
  accuracy, and their ``accuracy`` cell in the per-class CSV is left empty. No NaN is produced
  anywhere, so the numbers can be logged as MLflow metrics as they are.
- Names in CSV cells (classes, video ids) pass through :func:`csv_text`: a name a spreadsheet
  would run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab or carriage return) is
  prefixed with ``'`` (OWASP's CSV-injection rule), so it is shown as text.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ClassificationResult", "classification_report", "csv_text"]

#: Leading characters that make a spreadsheet evaluate a cell (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: object) -> str:
    """A name as a CSV cell that no spreadsheet runs as a formula (``'`` prefixed when needed)."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


@dataclass(frozen=True)
class ClassificationResult:
    """Video-level classification metrics of one model on one test set.

    Attributes:
        accuracy: top-1 accuracy over all N videos, in [0, 1].
        mean_class_accuracy: mean of the per-class accuracies over the classes present in the
            test set (support > 0), in [0, 1].
        per_class_accuracy: ``{class name: accuracy}`` for the classes with support > 0, in
            class-index order.
        confusion: (K, K) int64 counts; row = true class, column = predicted class.
        support: (K,) int64 number of test videos of each class (the confusion row sums).
        predictions: (N,) int64 predicted class index of each video.
        class_names: the K class names, index order.
    """

    accuracy: float
    mean_class_accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: np.ndarray
    support: np.ndarray
    predictions: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_videos(self) -> int:
        return int(self.support.sum())

    def metrics(self, prefix: str = "test/") -> dict[str, float]:
        """The two headline numbers as ``{prefix + "accuracy": ..., prefix + "mean_class_accuracy": ...}``."""
        return {f"{prefix}accuracy": self.accuracy, f"{prefix}mean_class_accuracy": self.mean_class_accuracy}

    def per_class_to_csv(self, path: str | Path) -> Path:
        """Write ``class,index,support,correct,accuracy`` (one line per class, K lines after the
        header). ``accuracy`` is empty for a class with support 0. Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        correct = np.diag(self.confusion)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "index", "support", "correct", "accuracy"])
            for k, name in enumerate(self.class_names):
                acc = f"{correct[k] / self.support[k]:.6f}" if self.support[k] > 0 else ""
                writer.writerow([csv_text(name), k, int(self.support[k]), int(correct[k]), acc])
        return path

    def confusion_to_csv(self, path: str | Path) -> Path:
        """Write the confusion matrix: a header ``true\\predicted,<name 0>,...,<name K-1>`` then one
        line per true class ``<name>,<count>,...``. Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true\\predicted", *(csv_text(n) for n in self.class_names)])
            for name, row in zip(self.class_names, self.confusion, strict=True):
                writer.writerow([csv_text(name), *(int(v) for v in row)])
        return path


def classification_report(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> ClassificationResult:
    """Top-1 accuracy, mean class accuracy, per-class accuracy and confusion matrix.

    Args:
        probabilities: (N, K) class scores per video (probabilities or any monotone score; only
            the argmax is used). Must be finite.
        labels: (N,) integer true class indices in [0, K).
        class_names: K names, index order.

    Returns:
        A :class:`ClassificationResult`. With N = 0 the accuracies are 0.0 (there is nothing
        right) and the confusion matrix is all zeros.

    Raises:
        ValueError: on shape mismatches, non-finite scores or labels outside [0, K).
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    names = tuple(str(n) for n in class_names)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {probs.shape}")
    n, k = probs.shape
    if k != len(names):
        raise ValueError(f"probabilities have K={k} columns but {len(names)} class names were given")
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},) to match probabilities, got shape {labels.shape}")
    if n and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError("labels must be integer class indices")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), found range [{labels.min()}, {labels.max()}]")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probabilities contain NaN or inf")

    predictions = probs.argmax(axis=1).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(axis=1)
    correct = np.diag(confusion)
    present = support > 0
    per_class = {names[c]: float(correct[c] / support[c]) for c in np.flatnonzero(present)}
    accuracy = float(correct.sum() / n) if n else 0.0
    mean_class = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return ClassificationResult(
        accuracy=accuracy,
        mean_class_accuracy=mean_class,
        per_class_accuracy=per_class,
        confusion=confusion,
        support=support,
        predictions=predictions,
        class_names=names,
    )
