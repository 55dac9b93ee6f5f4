"""Shared fixtures and the suite's order. What tests import is the ``tests.support`` package."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.course import copy_course

#: Every test of these folders is slow (a real CLI run, a hub, a cluster, a browser): ``-m "not slow"``
#: runs unit/ and the quick part of course/.
SLOW_FOLDERS = ("system", "browser")


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    """A copy of course/, source_notebooks/ and release/ (runtime state left behind).

    Returns the copied course folder; the repository's own gradebook is never touched.
    """
    return copy_course(tmp_path)


def pytest_collection_modifyitems(session, config, items) -> None:
    """``slow`` by folder; then the longest test files first (``support/file_costs.json``); within a
    file, pytest's order."""
    from tests.support import file_costs

    for item in items:
        parts = Path(str(item.fspath)).parts
        if "tests" in parts and parts[parts.index("tests") + 1] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)
    costs = file_costs.load()
    if not costs:
        return
    order = {}
    for i, item in enumerate(items):
        order.setdefault(item.nodeid.split("::")[0], i)
    items.sort(key=lambda item: (-costs.get(item.nodeid.split("::")[0], 0.0), order[item.nodeid.split("::")[0]]))
