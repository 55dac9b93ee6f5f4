"""Collection reads only regular files and survives any zip (fast: no grading here).

Every link (symbolic or hard) at any level, every special file, and every broken zip
entry becomes a submission's reason or a refusal; nothing is followed or extracted
outside the unpack folder, and a zip that cannot be read at all is one clear error.
"""
from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import pytest

from autograder.files import read_regular
from autograder.intake import collect
from autograder.course import Course, CourseError
from tests.support.course import REPO

AID = "01_perceptron"
NB = f"{AID}/{AID}.ipynb"
COURSE = Course(REPO / "course")


@pytest.fixture(scope="module")
def notebook_bytes() -> bytes:
    return (REPO / "release" / AID / f"{AID}.ipynb").read_bytes()


def _discover(root: Path, problems=None):
    found, refused = collect.discover(COURSE, root, problems=problems)
    return {(s.student, s.assignment): s for s in found}, {(r.name, r.assignment): r.reason for r in refused}


def test_links_and_special_files_are_refused_at_every_level(tmp_path, notebook_bytes):
    root = tmp_path / "subs"
    (root / "alice" / AID).mkdir(parents=True)
    (root / "alice" / NB).write_bytes(notebook_bytes)
    outside = tmp_path / "outside.ipynb"
    outside.write_bytes(notebook_bytes)
    os.symlink(root / "alice", root / "linked_student")                        # the student folder
    (root / "bob").mkdir()
    os.symlink(root / "alice" / AID, root / "bob" / AID)                       # the assignment folder
    (root / "carol" / AID).mkdir(parents=True)
    os.symlink(root / "alice" / NB, root / "carol" / NB)                       # the notebook
    (root / "dave" / AID).mkdir(parents=True)
    os.link(outside, root / "dave" / NB)                                       # a hard link
    (root / "erin" / AID).mkdir(parents=True)
    (root / "erin" / NB).write_bytes(notebook_bytes)
    os.symlink("/etc/passwd", root / "erin" / AID / "data.csv")                # a link beside it
    (root / "frank" / AID).mkdir(parents=True)
    os.mkfifo(root / "frank" / NB)                                             # would block a reader
    (root / "gina" / AID / "deep" / "er").mkdir(parents=True)
    (root / "gina" / NB).write_bytes(notebook_bytes)
    os.symlink("/root", root / "gina" / AID / "deep" / "er" / "x")             # deep inside
    found, refused = _discover(root)
    assert found[("alice", AID)].gradable
    assert "symbolic link" in refused[("linked_student", "")]
    for student, kind in [("bob", "symbolic link"), ("carol", "symbolic link"), ("dave", "hard link"),
                          ("erin", "symbolic link"), ("frank", "not a regular file"), ("gina", "symbolic link")]:
        sub = found[(student, AID)]
        assert not sub.gradable and sub.problem.startswith("refused") and kind in sub.problem, (student, sub.problem)


def test_read_regular_never_follows_a_link(tmp_path):
    target = tmp_path / "t"
    target.write_text("secret")
    os.symlink(target, tmp_path / "l")
    with pytest.raises(OSError):
        read_regular(tmp_path / "l", 100)
    assert read_regular(target, 100) == b"secret"
    with pytest.raises(OSError):
        read_regular(target, 3)


def test_odd_student_ids_are_refused_with_a_reason(tmp_path, notebook_bytes):
    root = tmp_path / "subs"
    for name in ["josé", "a" * 100, ".hidden", "evil\x1b[2J", "ok_student"]:
        (root / name / AID).mkdir(parents=True)
        (root / name / NB).write_bytes(notebook_bytes)
    (root / "__MACOSX").mkdir()
    (root / "notes.txt").write_text("hi")
    (root / "ok_student" / "99_unknown").mkdir()
    found, refused = _discover(root)
    assert list(found) == [("ok_student", AID)]
    assert "not a valid student id" in refused[("josé", "")]
    assert "not a valid student id" in refused[("a" * 100, "")]
    assert "hidden folder" in refused[(".hidden", "")]
    assert ("evil\x1b[2J", "") in refused
    assert "student folder" in refused[("notes.txt", "")]
    assert "not an assignment" in refused[("ok_student", "99_unknown")]
    assert not any(name == "__MACOSX" for name, _ in refused)


def _zip_entry(zf: zipfile.ZipFile, name: str, data: bytes, mode: int | None = None, flags: int = 0) -> None:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.external_attr = mode << 16
    info.flag_bits |= flags
    zf.writestr(info, data)


def _patch_central(path: Path, name: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of ``name``'s central-directory record (offsets per APPNOTE 4.3.12)."""
    raw = bytearray(path.read_bytes())
    i = raw.find(b"PK\x01\x02")
    while i >= 0:
        n = struct.unpack_from("<H", raw, i + 28)[0]
        if raw[i + 46: i + 46 + n] == name.encode():
            struct.pack_into(fmt, raw, i + offset, value)
            path.write_bytes(bytes(raw))
            return
        i = raw.find(b"PK\x01\x02", i + 4)
    raise KeyError(name)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def hostile_zip(path: Path, nb: bytes) -> None:
    """One honest student and every kind of broken entry an LMS download or a student can produce."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        _zip_entry(zf, f"alice/{NB}", nb)
        _zip_entry(zf, f"bob/{NB}", nb)                                  # its data is corrupted below
        _zip_entry(zf, f"carol/{NB}", nb, flags=0x1)                     # marked encrypted
        _zip_entry(zf, f"dave/{NB}", nb)                                 # its size lies (below)
        _zip_entry(zf, f"erin/{AID}/" + "x" * 300 + ".ipynb", nb)        # a name too long
        _zip_entry(zf, "frank", b"a file")                               # a file where a folder...
        _zip_entry(zf, f"frank/{NB}", nb)                                # ... is expected
        _zip_entry(zf, f"gina/{NB}", b"/etc/passwd", mode=0o120777)      # a symbolic link
        _zip_entry(zf, f"hugo/{NB}", nb)
        _zip_entry(zf, f"hugo/{NB}", nb)                                 # twice
        _zip_entry(zf, f"../escape/{NB}", nb)                            # leaves the archive
        _zip_entry(zf, f"josé/{NB}", nb)                                 # not a valid id
        _zip_entry(zf, "__MACOSX/._alice", b"junk")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        bob = zf.getinfo(f"bob/{NB}")
    start = bob.header_offset + 30 + len(bob.filename.encode()) + len(bob.extra)
    raw[start + len(nb) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    _patch_central(path, f"dave/{NB}", 24, "<I", 100)                    # uncompressed size: 100
    _patch_central(path, f"carol/{NB}", 8, "<H", 0x1)                    # "encrypted" (writestr clears it)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        struct.pack_into("<H", raw, zf.getinfo(f"carol/{NB}").header_offset + 6, 0x1)
    path.write_bytes(bytes(raw))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_hostile_zip_gives_every_entry_an_outcome(tmp_path, notebook_bytes):
    zpath = tmp_path / "export.zip"
    hostile_zip(zpath, notebook_bytes)
    root, problems = collect.open_source(zpath, tmp_path / "unpack", {AID})
    found, refused = _discover(root, problems)
    assert found[("alice", AID)].gradable
    expect = {"bob": "could not be read", "carol": "encrypted", "dave": "could not be read",
              "erin": "too long", "frank": "a file where a folder is expected", "gina": "symbolic link",
              "hugo": "twice"}
    for student, words in expect.items():
        sub = found[(student, AID)]
        assert not sub.gradable and words in sub.problem, (student, sub.problem)
    assert "leaves the archive" in refused[("..", "")]
    assert ("josé", "") in refused
    assert not (tmp_path / "escape").exists() and not (tmp_path / "unpack" / "__MACOSX").exists()
    assert all(p.is_file() or p.is_dir() for p in (tmp_path / "unpack").rglob("*"))
    assert not any(p.is_symlink() for p in (tmp_path / "unpack").rglob("*"))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04" + b"\x00" * 40, b"not a zip at all", "truncated"])
def test_an_unreadable_zip_is_one_clear_error(tmp_path, notebook_bytes, content):
    zpath = tmp_path / "broken.zip"
    if content == "truncated":
        with zipfile.ZipFile(zpath, "w") as zf:
            zf.writestr(f"alice/{NB}", notebook_bytes)
        content = zpath.read_bytes()[: len(zpath.read_bytes()) // 2]
    zpath.write_bytes(content)
    with pytest.raises(CourseError) as e:
        collect.open_source(zpath, tmp_path / "unpack", {AID})
    assert "not a readable zip file" in str(e.value) and "\n" not in str(e.value)


def test_a_zip_bomb_is_cut_at_its_real_size(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "MAX_NOTEBOOK_MB", 1)
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"alice/{NB}", b"0" * (5 * 2**20))
    _patch_central(zpath, f"alice/{NB}", 24, "<I", 10)  # claims 10 bytes
    problems = collect.extract_zip(zpath, tmp_path / "unpack")
    assert list(problems) == [f"alice/{NB}"]
    assert not (tmp_path / "unpack" / "alice" / NB).exists()


def test_timestamp_txt_is_read_and_checked(tmp_path, notebook_bytes):
    folder = tmp_path / "s" / "alice" / AID
    folder.mkdir(parents=True)
    (folder / f"{AID}.ipynb").write_bytes(notebook_bytes)
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    sub = collect.check_submission("alice", AID, folder)
    assert sub.gradable and sub.timestamp.startswith("2026-12-01")
    (folder / "timestamp.txt").write_text("yesterday-ish")
    sub = collect.check_submission("alice", AID, folder)
    assert sub.gradable and sub.timestamp is None and any("timestamp.txt" in n for n in sub.notes)
