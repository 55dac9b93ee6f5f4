"""The small real data sets that ship inside the package (``helpers/datasets/``).

Each file is checked against its sha256 before it is used (about 5 ms for both), so a
truncated clone, a Git LFS pointer or an edited file gives a clear message instead of
strange numbers later. Attribution and licences: ``helpers/datasets/PROVENANCE.md``.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

DATASETS_DIR = Path(__file__).resolve().parent.parent / "datasets"

SHIPPED_SHA256 = {
    "mnist9k.npz": "eb8fcaf007eb5bdcd03b9c8433793eecf13a700f84e22e004ebeb98b5457b2cc",
    "names.txt": "cba14f452b7768bd7fe093035a67491d4a334061634ccfd51522fb796910e75e",
}


class ShippedDataError(RuntimeError):
    """A data file that should ship with the course is missing or damaged."""


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``algorithm`` is ``"sha256"`` or ``"md5"``), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shipped_path(filename: str, directory: str | Path | None = None) -> Path:
    """Path of a shipped file after checking its sha256; raises ``ShippedDataError`` if it is bad."""
    expected = SHIPPED_SHA256[filename]
    path = Path(directory) / filename if directory is not None else DATASETS_DIR / filename
    fix = (
        "Restore it from the course repository (git checkout -- helpers/datasets/ or a fresh "
        "clone; if you use Git LFS, run `git lfs pull`), or reinstall the course package."
    )
    if not path.is_file():
        raise ShippedDataError(f"The course data file {path} is missing. {fix}")
    actual = file_checksum(path, "sha256")
    if actual != expected:
        raise ShippedDataError(
            f"The course data file {path} is damaged: its sha256 is {actual}, "
            f"expected {expected}. {fix}"
        )
    return path


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """A deterministic .npz of ``arrays`` (in the order given, fixed timestamps, deflated): the same
    arrays give the same bytes, so a data file made again is byte for byte the one committed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, body.getvalue())
    return buf.getvalue()
