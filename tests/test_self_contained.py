"""A clone is all a user has: no tracked file names an absolute path of some machine or a file
outside the repository (the shared notes, data folders next to the checkout)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: What a clone of the repository cannot have.
FORBIDDEN = {
    "an absolute path of a machine": re.compile(
        r"(?<![\w.~:/-])/(?:work|Users|mnt|root|srv|scratch|workspace)/[\w.-]"
        r"|(?<![\w.~:/-])/home/(?!app\b)[\w.-]+/"
        r"|(?<![\w.~:/-])/tmp/[\w.-]"
        r"|\b[A-Z]:\\\\?(?:Users|home)\b",
    ),
    "a file outside the repository": re.compile(
        r"(?<![\w/.-])(?:NOTES|DESIGN|STYLE)\.md\b"
        r"|(?<![\w/.-])shared/(?:data|NOTES|DESIGN|STYLE)\b"
        r"|\.\./shared/",
    ),
}

#: Paths that are not a machine's but a tool's or the image's own, allowed everywhere.
ALLOWED = (
    "/tmp/ray",  # Ray's own session folder (what `address="local"` avoids reusing)
    "/home/app",  # the container image's user (infra/Dockerfile), the same on every machine
)

#: Test data of path functions: strings a test feeds to a path function, never opened.
ALLOWED_IN = {
    "tests/store/test_storage.py": ("/tmp/x",),
}

THIS_FILE = "tests/test_self_contained.py"
#: Pieces of the references the scan must catch, joined only at run time: this file holds no
#: such reference itself (other checkers read it too).
WORK, NOTES, SHARED = "/" + "work", "NOTES" + ".md", "sha" + "red"


def tracked_text_files() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    texts = {}
    for name in filter(None, names):
        path = REPO / name
        if name == THIS_FILE or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images, pickles)
        texts[name] = data.decode("utf-8", errors="replace")
    return texts


def offences(name: str, text: str) -> list[str]:
    """Each forbidden reference in ``text`` as ``name:line: what: the match``."""
    found = []
    allowed = ALLOWED + ALLOWED_IN.get(name, ())
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(line):
                if any(line.startswith(ok, match.start()) for ok in allowed):
                    continue
                found.append(f"{name}:{number}: {what}: {match.group(0)!r}")
    return found


def test_no_tracked_file_names_a_machines_absolute_path_or_a_file_outside_the_repository():
    texts = tracked_text_files()
    assert len(texts) > 100  # the scan reads the repository, not an empty list
    found = [item for name, text in sorted(texts.items()) for item in offences(name, text)]
    assert not found, "a clone has none of these:\n" + "\n".join(found)


def test_the_scan_catches_each_kind_of_reference_and_spares_the_allowed_ones():
    caught = [
        f'SPLITS = Path("{WORK}/{SHARED}/data/ucf101/ucfTrainTestlist")',
        f'subprocess.run(cmd, cwd="{WORK}/main")',
        "see /home/alice/videolstm/runs",
        "python make_videos.py /tmp/u",
        r"C:\Users\bob\data",
        f"# measured on this machine ({NOTES})",
        f"upload {SHARED}/data/ucf101_24/pyannot.pkl first",
        f's3.put("../{SHARED}/x.pkl", "s3://b/x.pkl")',
        "see " + "STYLE" + ".md",
    ]
    spared = [
        "HOME=/home/app",
        "never a stale cluster recorded in /tmp/ray",
        "s3://bucket/datasets/ucf101",
        "videolstm/data/datasets/README.md",
        "docs/stack-notes.md",
        "file:///tmp-like/no",
        "runs/embedded/mlflow.db",
    ]
    assert [line for line in caught if not offences("x.py", line)] == []
    assert [line for line in spared if offences("x.py", line)] == []
    assert offences("tests/store/test_storage.py", 'st.join("/tmp/x", "y")') == []
    assert offences("videolstm/other.py", 'st.join("/tmp/x", "y")') != []
