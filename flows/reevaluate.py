"""The ``reevaluate`` flow: re-evaluate the latest registered models; fail loudly on regression.

Scheduled nightly by ``prefect.yaml``. The flow's state is Completed when no model regressed,
and Failed with a message naming each regressed model and its accuracy drop otherwise (the
model versions also carry ``videolstm.regression`` tags in MLflow).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.states import Completed, Failed

from tasks.reevaluate import reevaluate_models
from videolstm.config import BenchmarkConfig

reevaluate_task = task(reevaluate_models, name="reevaluate-models", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=30)


def regression_message(checks) -> str:
    regressed = [c for c in checks if c.regression]
    return "; ".join(f"{c.name} v{c.version} accuracy dropped {c.drop:.3f} ({c.previous:.3f} -> {c.accuracy:.3f})" for c in regressed)


@flow(name="reevaluate", log_prints=True)
def reevaluate(config: BenchmarkConfig = BenchmarkConfig()) -> Any:
    """Evaluate the latest version of each registered model and compare with its last evaluation."""
    logger = get_run_logger()
    checks = reevaluate_task(config)
    for check in checks:
        logger.info(check.describe())
    data = [asdict(c) for c in checks]
    if any(c.regression for c in checks):
        message = "regression: " + regression_message(checks)
        logger.error(message)
        return Failed(message=message, data=data)
    return Completed(message=f"{len(checks)} model(s) re-evaluated, no regression beyond {config.evaluate.regression_threshold}", data=data)
