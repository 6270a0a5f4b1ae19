"""UCF101 (and the synthetic set, written in the same layout): split files → video index.

Layout under ``root`` (any URI)::

    root/
      ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi ...
      HandstandPushups/v_HandStandPushups_g01_c01.avi ...   # folder spelled differently!
      ucfTrainTestlist/
        classInd.txt
        trainlist01.txt trainlist02.txt trainlist03.txt
        testlist01.txt  testlist02.txt  testlist03.txt

File formats (UTF-8, CRLF or LF line endings, blank lines ignored):

- ``classInd.txt``: one line per class, ``<1-based index> <ClassName>``, e.g.
  ``37 HandStandPushups``. Indices must be 1..N without gaps or repeats; the 0-based label of a
  class is ``index - 1``. A broken class index raises ValueError (file and line).
- ``trainlist0N.txt``: ``<ClassName>/<video>.avi <1-based label>``, e.g.
  ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``.
- ``testlist0N.txt``: ``<ClassName>/<video>.avi`` (the official files) or the same with the
  label (some redistributed copies). Both forms are accepted in both files.

The label is always taken from ``classInd.txt`` via the class folder named in the line, never
the raw 1-based number; a label in the line that disagrees with ``classInd.txt`` makes the row
``failed``. So do: a malformed line, a class missing from ``classInd.txt``, a video listed
twice, a video in both the train and the test list, and (with ``check_files``) a video missing
on storage. Each reason names the split file, the line number and the fix.

The official archive names the ``HandStandPushups`` class's folder ``HandstandPushups`` while
the files inside and the split files say ``HandStandPushups``: class folders are matched
case-insensitively (see :class:`videolstm.data.datasets.listing.FolderListing`). ``video_id`` keeps
the split file's spelling (``HandStandPushups/v_HandStandPushups_g08_c01``); ``path`` is the
real location.
"""

from __future__ import annotations

from videolstm.config import InputLimits, StorageConfig
from videolstm.data.datasets.listing import FolderListing, IndexRow, checked_name, read_text_file, split_lines
from videolstm.messages import short_repr
from videolstm.store.safepath import check_name
from videolstm.store.storage import join

SPLIT_DIR = "ucfTrainTestlist"
CLASS_INDEX = "classInd.txt"


def split_files(split: int) -> dict[str, str]:
    """``{"train": "trainlist0N.txt", "test": "testlist0N.txt"}`` for split N."""
    return {"train": f"trainlist0{split}.txt", "test": f"testlist0{split}.txt"}


def parse_class_index(text: str, source: str) -> list[str]:
    """Parse ``classInd.txt`` (``<1-based index> <ClassName>`` per line).

    Returns the class names ordered by label (``names[label]``, label = index - 1).
    Raises ValueError naming ``source`` and the line for a malformed line, a repeated index or
    name, or indices that are not exactly 1..N.
    """
    by_index: dict[int, tuple[str, int]] = {}
    names: dict[str, int] = {}
    for number, line in split_lines(text):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 9:
            raise ValueError(f"{source} line {number}: {short_repr(line)} is not '<1-based index> <ClassName>'; fix the line")
        index, name = int(parts[0]), check_name(parts[1], f"{source} line {number}: class name")
        if index in by_index:
            raise ValueError(f"{source} line {number}: index {index} already used on line {by_index[index][1]}; fix the file")
        if name in names:
            raise ValueError(f"{source} line {number}: class {name!r} already listed on line {names[name]}; fix the file")
        by_index[index] = (name, number)
        names[name] = number
    if not by_index:
        raise ValueError(f"{source} lists no classes; restore it from UCF101TrainTestSplits-RecognitionTask.zip")
    expected = set(range(1, len(by_index) + 1))
    if set(by_index) != expected:
        missing = sorted(expected - set(by_index))[:5]
        raise ValueError(f"{source}: class indices must be 1..{len(by_index)} without gaps; missing {missing}; fix the file")
    return [by_index[i][0] for i in range(1, len(by_index) + 1)]


def parse_split_file(text: str, file_name: str, subset: str, class_to_label: dict[str, int]) -> list[tuple[int, IndexRow, str]]:
    """Parse one UCF101 split file (see the module docstring for the line format).

    Returns ``(line number, row, file name in the class folder)`` per non-blank line. ``row.path``
    is left empty (the caller knows the root); rows for bad lines are already ``failed``.
    """
    out = []
    seen: dict[str, int] = {}
    for number, line in split_lines(text):
        where = f"{file_name} line {number}"
        parts = line.split()
        rel = parts[0]
        pieces = rel.split("/")
        if len(parts) > 2 or len(pieces) != 2 or not pieces[0] or not pieces[1] or "." not in pieces[1]:
            row = IndexRow(video_id=rel.rsplit(".", 1)[0], path="", label=-1, class_name="", subset=subset)
            row.fail(f"{where}: malformed line {short_repr(line)}; expected '<Class>/<video>.avi [<1-based label>]'; fix the line")
            out.append((number, row, ""))
            continue
        class_name, file = pieces
        unsafe = checked_name(class_name, f"{where}: class name") or checked_name(file, f"{where}: video file name")
        if unsafe:
            row = IndexRow(video_id=rel.rsplit(".", 1)[0], path="", label=-1, class_name="", subset=subset)
            out.append((number, row.fail(unsafe), ""))
            continue
        video_id = rel.rsplit(".", 1)[0]
        label = class_to_label.get(class_name, -1)
        row = IndexRow(video_id=video_id, path="", label=label, class_name=class_name, subset=subset)
        if label < 0:
            row.fail(f"{where}: {short_repr(rel)} names class {short_repr(class_name)} which is not in {CLASS_INDEX}; fix the line or add the class")
        elif len(parts) == 2:
            if not parts[1].lstrip("-").isdigit():
                row.fail(f"{where}: label {short_repr(parts[1])} is not an integer; expected '<Class>/<video>.avi [<1-based label>]'")
            elif len(parts[1]) > 9 or int(parts[1]) != label + 1:
                row.fail(
                    f"{where}: label {parts[1]} disagrees with {CLASS_INDEX}, where {class_name!r} is {label + 1} "
                    f"(labels are 1-based in the split files); fix the label or the class"
                )
        if video_id in seen:
            row.fail(f"{where}: {short_repr(rel)} is listed twice (first on line {seen[video_id]}); remove the duplicate line")
        else:
            seen[video_id] = number
        out.append((number, row, file))
    return out


def ucf101_index(
    root: str,
    split: int,
    storage: StorageConfig | None = None,
    *,
    check_files: bool = True,
    limits: InputLimits | None = None,
    split_dir: str | None = None,
) -> list[IndexRow]:
    """Index rows of UCF101 split ``split`` under ``root`` (train rows first, then test).

    ``split_dir``: the folder of the split files (default ``<root>/ucfTrainTestlist``); the
    videos are always looked up under ``root``.

    See :func:`videolstm.data.datasets.load_index` for the columns and :mod:`this module
    <videolstm.data.datasets.ucf101>` for the file formats and the failure rules.
    """
    split_dir = split_dir or join(root, SPLIT_DIR)
    fix = "restore it from UCF101TrainTestSplits-RecognitionTask.zip (see videolstm/data/datasets/README.md)"
    class_uri = join(split_dir, CLASS_INDEX)
    classes = parse_class_index(read_text_file(class_uri, storage, fix, limits), class_uri)
    class_to_label = {name: label for label, name in enumerate(classes)}
    listing = FolderListing(root, storage)

    rows: list[IndexRow] = []
    first_seen: dict[str, str] = {}
    for subset, file_name in split_files(split).items():
        text = read_text_file(join(split_dir, file_name), storage, fix, limits)
        for number, row, file in parse_split_file(text, file_name, subset, class_to_label):
            if file:
                row.path = listing.expected_uri(row.class_name, file)
            where = f"{file_name} line {number}"
            if row.status == "ok":
                other = first_seen.get(row.video_id)
                if other is not None and not other.startswith(file_name):
                    row.fail(f"{where}: {row.video_id!r} is also in {other}; a video belongs to one subset, fix the split files")
                first_seen.setdefault(row.video_id, where)
            if check_files and row.status == "ok":
                found, missing = listing.find(row.class_name, file)
                if found is None:
                    row.fail(
                        f"{where}: {short_repr(row.class_name + '/' + file)} is listed but missing on storage ({missing}); restore the video or remove the line"
                    )
                else:
                    row.path, row.size_bytes, row.fingerprint = found.uri, found.size, found.fingerprint
            rows.append(row)
    return rows
