"""HMDB51: the official 70/30 split files → video index.

Layout under ``root`` (any URI)::

    root/
      brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi ...
      ...                                   # 51 class folders
      testTrainMulti_7030_splits/
        brush_hair_test_split1.txt brush_hair_test_split2.txt brush_hair_test_split3.txt
        ...                                 # 51 classes x 3 splits = 153 files

File format of ``<class>_test_split<N>.txt`` (UTF-8, CRLF or LF, blank lines ignored; the
official files end each line with a space, which is ignored)::

    <video>.avi <tag>

with tag ``0`` (not used in this split: no row), ``1`` (train) or ``2`` (test), e.g.
``April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1``. Every class lists its own 70 train / 30 test
videos, so each split has 3,570 train and 1,530 test videos.

Classes are the ``<class>`` parts of the split file names; labels are their 0-based positions
in sorted order (``brush_hair`` = 0 ... ``wave`` = 50). ``video_id`` is ``<class>/<video stem>``
and ``path`` is ``root/<class>/<video>.avi``.

A malformed line, an unknown tag, a duplicate, and (with ``check_files``) a video missing on
storage make a ``failed`` row whose reason names the split file, the line and the fix (for
a line too broken to tell its subset, ``subset`` is ``""``). A class that has a split file for
one split number but not for another raises (the labels would be wrong).
"""

from __future__ import annotations

import re

from videolstm.config import InputLimits, StorageConfig
from videolstm.data.datasets.listing import FolderListing, IndexRow, checked_name, read_text_file, split_lines
from videolstm.messages import short_repr
from videolstm.store.safepath import check_name
from videolstm.store.storage import get_fs, join, with_retries

SPLIT_DIR = "testTrainMulti_7030_splits"
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")
TAGS = {"1": "train", "2": "test"}


def hmdb51_classes(split_dir: str, storage: StorageConfig | None = None) -> list[str]:
    """Sorted class names from the split file names in ``split_dir`` (one listing).

    Raises FileNotFoundError if the folder is missing or holds no split files, and ValueError
    if a class lacks one of its three split files.
    """
    fs, path = get_fs(split_dir, storage)
    fs.invalidate_cache(path)
    fix = "extract test_train_splits.rar into the dataset root (see videolstm/data/datasets/README.md)"
    if not with_retries(lambda: fs.isdir(path), f"checking {split_dir}"):
        raise FileNotFoundError(f"HMDB51 split folder {split_dir} does not exist; {fix}")
    names = [n.rstrip("/").rsplit("/", 1)[-1] for n in with_retries(lambda: fs.ls(path, detail=False), f"listing {split_dir}")]
    splits_of: dict[str, set[str]] = {}
    for name in names:
        match = SPLIT_FILE.match(name)
        if match:
            splits_of.setdefault(match["cls"], set()).add(match["split"])
    if not splits_of:
        raise FileNotFoundError(f"{split_dir} holds no '<class>_test_split<N>.txt' files; {fix}")
    for cls in sorted(splits_of):  # a class name becomes a folder name: '..' must not
        check_name(cls, f"{split_dir}: split file {short_repr(f'{cls}_test_split1.txt')} names a class")
    for cls, have in sorted(splits_of.items()):
        if have != {"1", "2", "3"}:
            missing = ", ".join(f"{cls}_test_split{n}.txt" for n in sorted({"1", "2", "3"} - have))
            raise ValueError(f"{split_dir} lacks {missing} although other splits of {cls!r} exist; {fix}")
    return sorted(splits_of)


def parse_split_file(text: str, file_name: str, class_name: str, label: int) -> list[tuple[int, IndexRow, str]]:
    """Parse one ``<class>_test_split<N>.txt`` (format in the module docstring).

    Returns ``(line number, row, video file name)`` for lines with tag 1 or 2 and for bad lines
    (already ``failed``); tag-0 lines give no row. ``row.path`` is left empty.
    """
    out = []
    seen: dict[str, int] = {}
    for number, line in split_lines(text):
        where = f"{file_name} line {number}"
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or "/" in parts[0] or "." not in parts[0]:
            row = IndexRow(video_id=f"{class_name}/{parts[0].rsplit('.', 1)[0]}", path="", label=label, class_name=class_name, subset="")
            row.fail(f"{where}: malformed line {short_repr(line)}; expected '<video>.avi <0|1|2>'; fix the line")
            out.append((number, row, ""))
            continue
        file, tag = parts
        unsafe = checked_name(file, f"{where}: video file name")
        if unsafe:
            row = IndexRow(video_id=f"{class_name}/{file.rsplit('.', 1)[0]}", path="", label=label, class_name=class_name, subset=TAGS.get(tag, ""))
            out.append((number, row.fail(unsafe), ""))
            continue
        if tag == "0":
            continue
        row = IndexRow(video_id=f"{class_name}/{file.rsplit('.', 1)[0]}", path="", label=label, class_name=class_name, subset=TAGS.get(tag, ""))
        if tag not in TAGS:
            row.fail(f"{where}: tag {short_repr(tag)} is not 0 (unused), 1 (train) or 2 (test); fix the line")
        elif file in seen:
            row.fail(f"{where}: {file!r} is listed twice (first on line {seen[file]}); remove the duplicate line")
        else:
            seen[file] = number
        out.append((number, row, file))
    return out


def hmdb51_index(
    root: str,
    split: int,
    storage: StorageConfig | None = None,
    *,
    check_files: bool = True,
    limits: InputLimits | None = None,
) -> list[IndexRow]:
    """Index rows of HMDB51 split ``split`` under ``root`` (train rows first, then test).

    See :func:`videolstm.data.datasets.load_index` for the columns and this module's docstring for
    the file format and the failure rules.
    """
    split_dir = join(root, SPLIT_DIR)
    classes = hmdb51_classes(split_dir, storage)
    listing = FolderListing(root, storage)
    fix = "extract test_train_splits.rar into the dataset root (see videolstm/data/datasets/README.md)"
    rows: list[IndexRow] = []
    for label, class_name in enumerate(classes):
        file_name = f"{class_name}_test_split{split}.txt"
        text = read_text_file(join(split_dir, file_name), storage, fix, limits)
        for number, row, file in parse_split_file(text, file_name, class_name, label):
            if file:
                row.path = listing.expected_uri(class_name, file)
            if check_files and row.status == "ok":
                found, missing = listing.find(class_name, file)
                if found is None:
                    row.fail(
                        f"{file_name} line {number}: {file!r} is listed but missing on storage ({missing}); "
                        "restore the video (extract the class's rar from hmdb51_org.rar) or remove the line"
                    )
                else:
                    row.path, row.size_bytes, row.fingerprint = found.uri, found.size, found.fingerprint
            rows.append(row)
    order = {"train": 0, "test": 1, "": 2}
    rows.sort(key=lambda r: order[r.subset])  # stable: class order, then line order
    return rows
