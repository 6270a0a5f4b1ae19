"""Session fixtures of the integration tests: a tiny dataset taken once through the stages
up to features (real Ray Data, Ray Train and MLflow), reused by the training/evaluation tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.tiny import tiny_config
from videolstm.config import BenchmarkConfig, load_config
from videolstm.store.lineage import StageResult


@dataclass
class TinyPipeline:
    root: str
    base: dict[str, Any]
    index: StageResult
    frames_flow: StageResult
    frame_cnn: StageResult
    features: StageResult
    parent_run_id: str

    def config(self, **sections: Any) -> BenchmarkConfig:
        """The base config with whole sections replaced (same root, so upstream stages are reused)."""
        merged = dict(self.base)
        for name, value in sections.items():
            merged[name] = {**merged.get(name, {}), **value} if isinstance(value, dict) else value
        return load_config(merged)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray instance for the session (tests that need another cluster shut it down)."""
    import ray

    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory, ray_local: None) -> TinyPipeline:
    from tasks.dataset import run_dataset
    from tasks.features import run_features
    from tasks.frames_flow import run_frames_flow
    from tasks.report import start_benchmark_run
    from tasks.train import run_frame_cnn

    root = str(tmp_path_factory.mktemp("tiny-pipeline"))
    base = tiny_config(root)
    config = load_config(base)
    parent = start_benchmark_run(config)
    index = run_dataset(config)
    frames_flow = run_frames_flow(config, index)
    frame_cnn = run_frame_cnn(config, index, frames_flow, parent)
    features = run_features(config, frames_flow, frame_cnn)
    return TinyPipeline(root, base, index, frames_flow, frame_cnn, features, parent)
