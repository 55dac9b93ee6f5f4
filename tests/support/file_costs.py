"""The measured cost of each test file, so that the test runner starts the long ones first.

    python -m tests.support.file_costs JUNIT.xml     # after `./run test --junitxml=JUNIT.xml`

writes ``tests/support/file_costs.json`` ({test file: seconds, summed over its tests}, sorted, whole
seconds). ``conftest.py`` orders the collected files by it, longest first, and ``./run test``
keeps that order (``--no-loadscope-reorder``): with one file per worker at a time, the longest
files starting last would leave one worker alone at the end (longest-processing-time-first
scheduling). A file missing from the table runs after the others; a stale table only costs time.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

TABLE = Path(__file__).with_name("file_costs.json")


def load() -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(TABLE.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def costs_from_junit(path: Path) -> dict[str, int]:
    """{"tests/<level>/test_x.py": seconds} from a pytest JUnit XML report (classname
    ``tests.<level>.test_x``, and ``.Class`` where a test is a method)."""
    total: dict[str, float] = defaultdict(float)
    for case in ET.parse(path).iter("testcase"):
        module = case.get("classname", "").split(".")
        if len(module) >= 3 and module[0] == "tests":
            total[f"tests/{module[1]}/{module[2]}.py"] += float(case.get("time") or 0)
    return {k: round(v) for k, v in sorted(total.items())}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    table = costs_from_junit(Path(argv[0]))
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{TABLE}: {len(table)} files, {sum(table.values())} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
