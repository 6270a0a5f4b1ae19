"""Shared test setup: keep every tool's state inside the test session, telemetry off."""

from __future__ import annotations

import os
import tempfile

# Set before any test module imports ray, mlflow or prefect.
_STATE = tempfile.mkdtemp(prefix="videolstm-tests-")
for key, value in {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_HOME": os.path.join(_STATE, "prefect"),
    "TQDM_DISABLE": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(key, value)

import pytest  # noqa: E402

pytest_plugins = ["tests.servers", "tests.reliability.ledger"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fast unit tests first, then integration, then the reliability suite."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("reliability"):
            return 2
        if item.get_closest_marker("integration"):
            return 1
        return 0

    items.sort(key=rank)
