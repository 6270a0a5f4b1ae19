"""Preparing a dataset (:func:`prepare_dataset`) downloads the archives and extracts them into
the layout :func:`videolstm.data.datasets.load_index` reads; ``videolstm/data/datasets/README.md``
shows the resulting trees.

Fetching is :mod:`videolstm.data.datasets.download`, extraction
:mod:`videolstm.data.datasets.extraction`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from videolstm.config import InputLimits, StorageConfig
from videolstm.data.datasets.download import (
    DATASET_ARCHIVES,
    OFFICIAL_ARCHIVES,
    DownloadError,
    archive_name,
    cache_dir,
    download,
    read_record,
)
from videolstm.data.datasets.extraction import ExtractError, common_root, extract
from videolstm.messages import redact_uri
from videolstm.store.safepath import (
    under_root,
)
from videolstm.store.storage import (
    exists,
    join,
)


def prepare_dataset(
    kind: str,
    dest_uri: str,
    urls: Sequence[str] = (),
    *,
    storage: StorageConfig | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
    archives_uri: str | None = None,
    verify: bool = True,
    limits: InputLimits | None = None,
) -> str:
    """Download a dataset's archives and extract them into the layout ``load_index`` reads.

    Args:
        kind: ``"ucf101"`` or ``"hmdb51"``.
        dest_uri: the dataset root to create (any fsspec URI).
        urls: archive URLs (``DownloadConfig.urls``); empty means the official URLs of
            :data:`DATASET_ARCHIVES`. An archive is recognised by its file name, so a mirror
            (``s3://bucket/UCF101.rar``) is checked against the official checksums.
        storage: S3 endpoint/region for ``s3://`` URLs and destinations.
        staging_dir: local folder for partial downloads (default ``cache_dir()/downloads``).
        archives_uri: where the verified archives are kept (default the local
            ``cache_dir()/archives/<kind>``, so extraction reads them without another copy).
        verify: check the published sha256/size of :data:`OFFICIAL_ARCHIVES` (``False`` for a
            mirror holding repackaged archives: their digests are trusted on first use instead).
        limits: ``dataset.limits``: what one extraction may unpack (see :func:`extract`).

    Per archive: ``UCF101.rar`` → the class folders, its single top folder (``UCF-101/``) stripped;
    ``UCF101TrainTestSplits-*.zip`` → ``ucfTrainTestlist/`` (or the detection folder);
    ``hmdb51_org.rar`` → recursively, ``<class>/*.avi``; ``test_train_splits.rar`` →
    ``testTrainMulti_7030_splits/``. Other ``.zip``/``.rar`` files are extracted as they are.

    Returns:
        ``dest_uri``.

    Raises:
        ValueError: unknown ``kind``. DownloadError / ExtractError: see :func:`download` and
        :func:`extract`; DownloadError also for a URL whose file name decodes to a path
        (``..%252F..%252Fx.zip``); ExtractError also if the result lacks the split folder.
    """
    if kind not in DATASET_ARCHIVES:
        raise ValueError(f"prepare_dataset: kind must be one of {sorted(DATASET_ARCHIVES)} (the synthetic set is generated), got {kind!r}")
    urls = list(urls) or [OFFICIAL_ARCHIVES[name].url for name in DATASET_ARCHIVES[kind]]
    archives_uri = archives_uri or str(cache_dir() / "archives" / kind)
    names = [archive_name(url, "dataset.download.urls:", DownloadError) for url in urls]  # all checked first
    for url, name in zip(urls, names):
        spec = OFFICIAL_ARCHIVES.get(name) if verify else None
        archive = download(
            url,
            under_root(archives_uri, [name], f"archive downloaded from {redact_uri(url)}"),
            sha256=spec.sha256 if spec else None,
            size=spec.size if spec else None,
            storage=storage,
            staging_dir=staging_dir,
        )
        digest = read_record(archive, storage)["sha256"]  # type: ignore[index]
        strip = 0
        if name == "UCF101.rar" and common_root(archive, storage, limits) is not None:
            strip = 1
        extract(
            archive,
            dest_uri,
            storage,
            recursive=name == "hmdb51_org.rar",
            strip_components=strip,
            archive_sha256=digest,
            limits=limits,
        )
    split_dir = {"ucf101": "ucfTrainTestlist/classInd.txt", "hmdb51": "testTrainMulti_7030_splits"}[kind]
    if not exists(join(dest_uri, split_dir), storage):
        raise ExtractError(
            f"after extracting {names} into {dest_uri} there is no {split_dir}; the archives "
            f"do not hold the official {kind} layout (see videolstm/data/datasets/README.md); check dataset.download.urls"
        )
    return dest_uri
