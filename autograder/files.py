"""Files, written and read one way everywhere: whole or not at all, never through a link, readable JSON.

- ``atomic_output(path)`` / ``write_atomic(path, data)``: a new file beside ``path`` (a name of its own,
  created exclusively, never through a link), renamed over it when complete; a reader sees the old file
  or the new one, never half of one, and a failure leaves no partial file. ``private=True``: the file
  is 0600 and new folders 0700 (plans hold hidden inputs and expected outputs; outcomes name a
  student's mistakes), whatever the umask.
- ``read_regular(path, limit)``: the bytes of a regular file, never through a symbolic or hard link,
  at most ``limit`` (OSError otherwise).
- ``readable_json(obj)``: JSON for files people read and diff (sorted keys, one item a line).
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any, Iterator

#: Timestamp of every zip entry (zips then depend only on the content).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_output(path: Path, private: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed over ``path`` when the block ends without
    an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600 if private else 0o644))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_atomic(path: Path, data: bytes | str, private: bool = False) -> Path:
    """Write ``data`` (text is written as UTF-8) to ``path`` atomically (``atomic_output``)."""
    with atomic_output(path, private) as tmp:
        with open(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW), "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def link_kind(st: os.stat_result) -> str | None:
    """Why a file system entry is refused (a link or a special file), or None for a plain file/folder."""
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISREG(st.st_mode):
        return "a hard link" if st.st_nlink > 1 else None
    if stat.S_ISDIR(st.st_mode):
        return None
    return "not a regular file"


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, never through a link (``O_NOFOLLOW``, no hard links), at most
    ``limit``; OSError saying why otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        kind = link_kind(os.fstat(f.fileno()))
        if kind:
            raise OSError(f"{Path(path).name} is {kind}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{Path(path).name} is larger than {limit} bytes")
    return data


def readable_json(obj: Any, indent: str = "") -> str:
    """JSON with sorted keys, one key per line, and lists of plain values kept on one line
    (a diff then shows which case changed without one line per number)."""
    inner = indent + " "
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(k)}: {readable_json(obj[k], inner)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + readable_json(v, inner) for v in obj) + "\n" + indent + "]"
    return json.dumps(obj, ensure_ascii=False)
