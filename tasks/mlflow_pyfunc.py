"""MLflow models-from-code entry: a VideoLSTM variant as a pyfunc.

``predict`` takes ``{"x": (B, T, ...), ["flow": (B, T, ...)]}`` float32 arrays (pool5 maps or
fc7 vectors, as the variant needs) and returns class probabilities (B, K): softmax summed over
the T steps and normalised. For a frame CNN (the ConvNet variant) ``x`` is (B, T, C, H, W)
frames (or flow stacks) and the per-frame probabilities are averaged. The weights come from the ``checkpoint`` artifact, loaded with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class VideoLSTMPyfunc(PythonModel):
    def load_context(self, context):
        from videolstm.models.restore import restore_model
        from videolstm.store.checkpoint import load_checkpoint

        self.model, self.spec = restore_model(load_checkpoint(context.artifacts["checkpoint"]))

    @torch.no_grad()
    def predict(self, context, model_input, params=None):
        x = torch.as_tensor(np.asarray(model_input["x"], dtype=np.float32))
        if self.spec.kind == "frame_cnn":
            b, t = x.shape[:2]
            probabilities = self.model(x.flatten(0, 1)).logits.softmax(-1).reshape(b, t, -1).mean(1)
            return probabilities.numpy()
        flow = model_input.get("flow") if hasattr(model_input, "get") else None
        flow = torch.as_tensor(np.asarray(flow, dtype=np.float32)) if flow is not None else None
        probabilities = self.model(x, flow=flow).logits.softmax(-1).sum(1)
        return (probabilities / probabilities.sum(-1, keepdim=True)).numpy()


mlflow.models.set_model(VideoLSTMPyfunc())
