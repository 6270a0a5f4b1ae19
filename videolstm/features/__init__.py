"""Stages 3–4: the per-frame CNNs and the features they extract.

:mod:`~videolstm.features.backbones` (VGG-16 and the small frame CNN),
:mod:`~videolstm.features.inputs` (each stream's frame-CNN inputs from a frames+flow shard),
:mod:`~videolstm.features.extraction` (pool5 maps, fc7 vectors and logits per video).
"""
