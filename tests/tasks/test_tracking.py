"""MLflow metric names: one odd class name cannot make MLflow refuse a model's whole metric batch."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from tasks.tracking import MAX_METRIC_NAME, _metric_name, metric_names


@pytest.mark.parametrize("name", ["test/accuracy", "loc/mAP_0.2", "test/accuracy/ApplyEyeMakeup", "train/loss", "a b:c-d.e"])
def test_valid_names_are_kept_as_they_are(name):
    assert _metric_name(name) == name


REFUSED_BY_MLFLOW = ["test/accuracy/..", "test/accuracy/.", "test/accuracy/", "test//accuracy", "/test", "test/accuracy/a@b", "test/accuracy/../../x", ".."]


@pytest.mark.parametrize("name", REFUSED_BY_MLFLOW + ["test/accuracy/ .. ", "test/accuracy/" + "x" * 400, "test/accuracy/名前"])
def test_every_sanitised_name_is_one_mlflow_accepts(name):
    if name in REFUSED_BY_MLFLOW:
        with pytest.raises(MlflowException):
            _validate_metric_name(name)  # MLflow refuses it as it is (and with it the whole batch) ...
    fixed = _metric_name(name)
    _validate_metric_name(fixed)  # ... and accepts the sanitised name
    assert len(fixed) <= MAX_METRIC_NAME  # MLflow's key length limit, checked when a batch is logged


def test_different_names_never_collapse_into_one():
    names = ["test/accuracy/..", "test/accuracy/__", "test/accuracy/.", "test/accuracy/_", "test/accuracy/a@b", "test/accuracy/a_b"]
    mapped = metric_names(dict.fromkeys(names, 0.0))
    assert len(set(mapped.values())) == len(names)
