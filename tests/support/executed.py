"""Each source notebook executed top to bottom once per test run, shared by every test that reads it.

``executed(aid)`` runs ``source_notebooks/<aid>/<aid>.ipynb`` in a fresh kernel (in a copy of its
folder) the first time any test of this run asks for it, and keeps the executed notebook in
``artifacts/executed/<run>/``; later calls, in this process or another worker of the same run
(pytest-xdist's ``PYTEST_XDIST_TESTRUNUID``), read it back. A lock per notebook makes a second worker
wait for the first rather than run it again. A notebook that fails is remembered as failed, with the
error, for the rest of the run.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.support.course import REPO

#: A hang guard per cell, generous for a loaded machine (the 60 s target is measured by ./run bench).
CELL_TIMEOUT_S = 900
RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
CACHE = REPO / "artifacts" / "executed" / RUN


def executed(aid: str) -> nbformat.NotebookNode:
    """The executed source notebook of ``aid`` (AssertionError with the failing cell if it raised)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    done, failed = CACHE / f"{aid}.ipynb", CACHE / f"{aid}.error"
    with open(CACHE / f"{aid}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return nbformat.read(done, as_version=4)
        if failed.exists():
            raise AssertionError(failed.read_text())
        work = Path(tempfile.mkdtemp(prefix=f"executed-{aid}-")) / aid
        try:
            shutil.copytree(REPO / "source_notebooks" / aid, work)
            nb = nbformat.read(work / f"{aid}.ipynb", as_version=4)
            client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                    resources={"metadata": {"path": str(work)}})
            try:
                client.execute()
            except CellExecutionError as e:
                failed.write_text(f"{aid} failed when executed top to bottom:\n{str(e)[-4000:]}")
                raise AssertionError(failed.read_text()) from None
            nbformat.write(nb, done)
            return nb
        finally:
            shutil.rmtree(work.parent, ignore_errors=True)


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything an executed notebook printed (streams and plain-text results), in cell order."""
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out["text"])
            elif "text/plain" in out.get("data", {}):
                texts.append(out["data"]["text/plain"])
    return "\n".join(texts)
