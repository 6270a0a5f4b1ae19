"""Stages 6–7: scoring trained models and reporting.

:mod:`~videolstm.evaluation.metrics` (classification metrics),
:mod:`~videolstm.evaluation.localization` (boxes and tubes from attention, video mAP),
:mod:`~videolstm.evaluation.scoring` (one model's metrics and artifacts),
:mod:`~videolstm.evaluation.plots` (figures and overlay videos),
:mod:`~videolstm.evaluation.report` (the comparison tables).
"""
