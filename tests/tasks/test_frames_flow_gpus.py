"""tasks.frames_flow: tvl1_torch asks Ray for GPUs when the cluster has them (issue 24), the others never."""

from __future__ import annotations

import pytest

from tasks.frames_flow import flow_gpus_per_task
from videolstm.config import FlowConfig


@pytest.mark.parametrize(
    ("method", "cluster_gpus", "workers", "expected"),
    [
        ("tvl1_torch", 0.0, 4, 0.0),  # no GPU: the CPU path, no GPU request (a request would never be scheduled)
        ("tvl1_torch", 1.0, 4, 0.25),  # one GPU shared by four concurrent flow tasks
        ("tvl1_torch", 8.0, 4, 1.0),  # at most one GPU per task
        ("tvl1", 8.0, 4, 0.0),  # OpenCV's TV-L1 runs on the host's cores
        ("dis", 2.0, 1, 0.0),
    ],
)
def test_gpus_per_flow_task(method, cluster_gpus, workers, expected):
    assert flow_gpus_per_task(FlowConfig(method=method), cluster_gpus, workers) == pytest.approx(expected)
