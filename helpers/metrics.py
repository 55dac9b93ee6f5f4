"""Report a figure a notebook reaches (an accuracy, a loss, a time) against its target.

    report("cnn_test_accuracy", acc, target=0.98, unit="", seconds=train_time)

prints one readable line for the student and attaches the figure to the cell's
output as data (mimetype ``application/vnd.dl-course.metric+json``), which the
benchmarks read from the executed notebooks. Nothing is written anywhere else.
"""
from __future__ import annotations

from typing import Any

METRIC_MIMETYPE = "application/vnd.dl-course.metric+json"


def report(name: str, value: float, *, target: float | None = None, higher_is_better: bool = True,
           unit: str = "", seconds: float | None = None) -> dict[str, Any]:
    """Show ``name = value`` (and whether it meets ``target``); return the record."""
    value = float(value)
    met = None if target is None else (value >= target if higher_is_better else value <= target)
    record = {"name": name, "value": value, "target": target, "higher_is_better": higher_is_better,
              "unit": unit, "seconds": seconds, "met": met}
    text = f"{name} = {value:.4g}{unit}"
    if target is not None:
        text += f"  (target {'≥' if higher_is_better else '≤'} {target:g}{unit}: {'met' if met else 'NOT met'})"
    if seconds is not None:
        text += f"  [{seconds:.1f} s]"
    try:
        from IPython.display import display

        from IPython import get_ipython

        if get_ipython() is not None:
            display({"text/plain": text, METRIC_MIMETYPE: record}, raw=True)
            return record
    except ImportError:
        pass
    print(text)
    return record
