"""Storage shared by every stage: URIs and atomic writes (:mod:`~videolstm.store.storage`),
tensor shards (:mod:`~videolstm.store.shards`), per-item manifests
(:mod:`~videolstm.store.manifest`), stage folders and lineage keys
(:mod:`~videolstm.store.lineage`) and model checkpoints (:mod:`~videolstm.store.checkpoint`).
"""
