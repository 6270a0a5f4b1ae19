"""Stage 1–2 of the pipeline: datasets (UCF101, HMDB51, UCF101-24 annotations, the synthetic
set, download and extraction), decoding videos, optical flow, and the per-video frames+flow
extraction.

Modules: :mod:`~videolstm.data.datasets`, :mod:`~videolstm.data.video`,
:mod:`~videolstm.data.flow`, :mod:`~videolstm.data.frames_flow`.
"""
