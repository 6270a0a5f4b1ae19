"""A tiny benchmark configuration for integration tests (a few videos, one epoch, small sizes)."""

from __future__ import annotations

from typing import Any


def tiny_config(root: str, **sections: Any) -> dict[str, Any]:
    """A BenchmarkConfig mapping that runs the whole pipeline in about a minute on 2 cores.

    ``sections`` replace whole top-level sections (e.g. ``train={...}``) after the defaults here.
    """
    config: dict[str, Any] = {
        "name": "tiny",
        "dataset": {
            "kind": "synthetic",
            "synthetic": {"num_classes": 2, "videos_per_class": 3, "frames": 10, "height": 48, "width": 48, "distractors": 1},
        },
        "storage": {"root": root},
        "flow": {"method": "dis", "dis_preset": "ultrafast", "height": 28, "width": 28, "workers": 1},
        "frame_cnn": {"channels": [4, 8], "fc_dim": 16, "flow_stack": 2, "epochs": 1, "batch_size": 16, "frames_per_video": 4},
        "features": {"workers": 1},
        "train": {
            "variants": ["lstm", "convalstm"],
            "streams": ["rgb"],
            "seeds": [0],
            "epochs": 1,
            "batch_size": 4,
            "snippet_length": 6,
            "model": {"hidden_channels": 4, "lstm_hidden": 8, "fc_dim": 8},
        },
        "evaluate": {"num_segments": 2, "segment_length": 6, "overlays_per_class": 1},
        "mlflow": {"experiment": "tiny"},
        "ray": {"num_cpus": 2},
    }
    config.update(sections)
    return config
