"""Model-design challenges: you build and train a model within a budget; it is graded on test data
you never had.

    challenge("digits_cnn", fit_digits)

``fit_digits(X_train, y_train, X_val, y_val)`` is yours: it builds a model, trains it and returns
it (an ``nn.Module``). ``challenge`` calls it exactly as the grader will, under the stated budget:

- **numbers the model holds**: every tensor and numpy array reachable from the returned model after
  its last prediction (``holdings``: parameters, buffers, and any tensor or array kept in an
  attribute, a list or dict, a closure or a class attribute), each piece of memory once;
- **CPU seconds**: the fit runs on one torch thread, seeded (torch, numpy and ``random`` with seed 0),
  and is stopped when its own CPU time (``time.process_time``) passes ``cpu_seconds``. The grader
  itself measures, from outside the sandbox, the CPU time of the **whole graded run** of the
  notebook (the kernel and every process and thread it starts, every cell it runs, the predictions
  included) and requires it to fit ``cpu_seconds + allowance_seconds``; at home, the report shows
  this kernel's CPU time so far (``kernel_cpu_seconds``).

In the grader, the holdings are listed by this harness inside the student's process and read by the
trusted side as plain data (names, shapes, dtypes; never unpickled): they guard against mistakes and
the known ways around a parameter count (buffers, plain tensor attributes, a model that grows while
predicting), not against a notebook that patches this harness. The CPU time is the grader's own
measurement: nothing in the notebook changes it.

The same fit gets the same score every time: during the call, entropy that Python hands out is a
fixed stream too (``os.urandom``, hence ``secrets``, ``random.SystemRandom``, ``uuid.uuid4`` and
numpy's ``default_rng()`` without a seed; and ``torch.seed()``). What no harness can fix: a fit that
seeds from the clock, calls ``random.seed()`` without an argument, or trains until a time is up
gets a score that may change from one grading run to the next.

In your notebook, the model is then scored on the *validation* split (the points it would get
there are an estimate: the grade uses the held-out test set, which only the instructor has). Under the
grader (``AUTOGRADER_HARVEST`` set), the same call runs inside the sandbox, the model's outputs on
the test inputs are written as plain numbers, and the grader computes the metric with the test
targets, which never enter the sandbox (``autograder.authoring.challenges``).

Each challenge's public specification (task, budget, thresholds) is in ``checks.json`` beside the
notebook (generated from the instructor's ``cases.py``).
"""
from __future__ import annotations

import functools
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from helpers.grading.checking import HARVEST_ENV, encode
from helpers.grading.contract import Harvest
from helpers.grading.tasks import get_task

CHECKS_FILE = "checks.json"
#: Seed of every challenge run (torch, numpy and ``random``), at home and in the grader.
FIT_SEED = 0


class ChallengeError(AssertionError):
    """A challenge that cannot be scored as it stands (over budget, wrong outputs...): the message says why."""

    def _render_traceback_(self) -> list[str]:  # IPython: the message, not a stack
        return ["\x1b[0;31mChallengeError\x1b[0m: " + str(self)]


class OverBudget(BaseException):
    """Raised inside ``fit`` when its CPU time runs out (a BaseException: ``except Exception`` in
    a training loop does not swallow it)."""


@dataclass(frozen=True)
class Spec:
    """A challenge's public specification (``checks.json``, or the grader's inputs file)."""

    name: str
    task: str                 # a name in ``helpers.grading.tasks.TASKS``
    max_parameters: int
    cpu_seconds: float
    metric: str               # the task's metric (``Task.metric``)
    full: float               # full marks from here
    zero: float               # no points from here (linear in between)
    points: float
    allowance_seconds: float = 0.0  # CPU s the graded run may use besides cpu_seconds (kernel, imports, checks)

    @classmethod
    def from_data(cls, name: str, d: dict) -> "Spec":
        return cls(name, str(d["task"]), int(d["max_parameters"]), float(d["cpu_seconds"]), str(d["metric"]),
                   float(d["full"]), float(d["zero"]), float(d.get("points", 0)),
                   float(d.get("allowance_seconds", 0)))

    @property
    def run_seconds(self) -> float:
        """The CPU budget of the whole graded run of the notebook: the fit's plus the allowance."""
        return self.cpu_seconds + self.allowance_seconds

    def fraction(self, value: float) -> float:
        """Share of the points for a metric value: 1 at or past ``full``, 0 at or past ``zero``, linear between."""
        if not math.isfinite(value):
            return 0.0
        t = (value - self.zero) / (self.full - self.zero)
        return float(min(1.0, max(0.0, t)))

    def describe(self, value: float) -> str:
        return get_task(self.task).describe(value)


# --------------------------------------------------------------------------- #
# Running a fit under the budget, and the model on inputs.
# --------------------------------------------------------------------------- #


@dataclass
class FitRun:
    """What running ``fit`` gave: the model (or why not), its parameters and CPU seconds."""

    model: Any = None
    parameters: int = 0
    cpu_seconds: float = 0.0
    error: str | None = None   # "not_implemented" | "over_time" | "interrupted" | "raised" | "not_a_module"
    detail: str = ""


def _seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fixed_entropy(seed: int) -> Callable[[], None]:
    """Make Python's entropy a fixed stream (``os.urandom``, what ``random``/``secrets`` draw from,
    ``torch.seed``) so that a fit seeding itself from it is deterministic; returns the undo."""
    import torch

    stream = random.Random(f"challenge fit entropy {seed}")

    def urandom(size: int) -> bytes:
        if size < 0:
            raise ValueError("negative argument not allowed")
        return stream.randbytes(size)

    def torch_seed() -> int:
        value = stream.getrandbits(63)
        torch.manual_seed(value)
        return value

    saved = [(os, "urandom"), (random, "_urandom"), (torch, "seed"), (torch.random, "seed")]
    saved = [(obj, name, getattr(obj, name)) for obj, name in saved if hasattr(obj, name)]
    for obj, name, _ in saved:
        setattr(obj, name, torch_seed if name == "seed" else urandom)

    def undo() -> None:
        for obj, name, value in saved:
            setattr(obj, name, value)

    return undo


def run_fit(fit: Callable, args: tuple, cpu_seconds: float) -> FitRun:
    """Call ``fit(*args)`` seeded, on one torch thread, stopped after ``cpu_seconds`` of CPU time."""
    import torch

    run = FitRun()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _seed_all(FIT_SEED)
    timer = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def over(signum: int, frame: Any) -> None:
        raise OverBudget()

    previous = signal.signal(signal.SIGPROF, over) if timer else None
    entropy = _fixed_entropy(FIT_SEED)
    start = time.process_time()
    try:
        if timer:
            signal.setitimer(signal.ITIMER_PROF, float(cpu_seconds))
        run.model = fit(*args)
    except OverBudget:
        run.error = "over_time"
    except KeyboardInterrupt:  # the grader's wall-clock limit for the cell (or the student's interrupt)
        run.error = "interrupted"
    except NotImplementedError:
        run.error = "not_implemented"
    except Exception as e:  # noqa: BLE001 - the student's code: its error is the outcome
        run.error, run.detail = "raised", f"your fit raised {type(e).__name__}: {str(e)[:200]}"
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
        run.cpu_seconds = time.process_time() - start
        entropy()
        torch.set_num_threads(threads)
    if run.error is None and run.cpu_seconds > cpu_seconds:
        run.error = "over_time"
    if run.error is None and not isinstance(run.model, torch.nn.Module):
        run.error, run.detail = "not_a_module", f"fit returned a {type(run.model).__name__}, not an nn.Module"
    if run.error is None:  # the model's parameters; ``holdings`` (what the grader counts) adds the rest
        run.parameters = int(sum(p.numel() for p in run.model.parameters()))
    return run


#: How far and how much ``holdings`` walks (objects visited); past either, the record says so.
HOLDINGS_DEPTH, HOLDINGS_OBJECTS = 64, 100_000


def holdings(model: Any) -> tuple[list[list], bool]:
    """Every tensor and numpy array the model holds, as ``([name, shape, dtype], ...), complete``.

    Reached from the model object: its parameters and buffers (persistent or not) and, recursively,
    every attribute of every object it holds (``__dict__`` and ``__slots__``, lists, tuples, sets,
    dict keys and values, the closures of functions it keeps, the class attributes of its own
    classes), to depth ``HOLDINGS_DEPTH``. One entry per piece of memory: a tensor that is a view
    counts its whole storage (``shape`` is then the storage's, flat), a tensor met twice counts once.
    ``complete`` is False when the walk stopped at its depth or object limit."""
    import torch

    import types

    found: list[list] = []
    keep: list[Any] = []  # what was visited stays alive: an id is never reused during the walk
    seen_objects: set[int] = set()
    seen_memory: set[tuple] = set()
    complete = True
    stack: list[tuple[str, Any, int]] = [("model", model, 0)]
    while stack:
        name, obj, depth = stack.pop()
        if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), type)) or id(obj) in seen_objects:
            continue
        if len(seen_objects) >= HOLDINGS_OBJECTS or depth > HOLDINGS_DEPTH:
            complete = False
            continue
        seen_objects.add(id(obj))
        keep.append(obj)
        if isinstance(obj, types.ModuleType) and getattr(obj, "__spec__", None) is not None:
            continue  # an imported module (torch.nn.functional...): not the model's; one made by hand is walked
        if isinstance(obj, torch.Tensor):
            extra = getattr(obj, "__dict__", None)  # attributes set on a tensor (t.table = ...)
            if extra:
                stack += [(f"{name}.{k}", v, depth + 1) for k, v in list(extra.items())]
            try:
                storage = obj.untyped_storage()
                numbers = storage.nbytes() // max(1, obj.element_size())
                key = ("torch", obj.device.type, storage.data_ptr(), storage.nbytes())
            except Exception:  # noqa: BLE001 - a tensor without storage (meta, sparse...): its shape
                numbers, key = obj.numel(), ("tensor", id(obj))
            if key not in seen_memory:
                seen_memory.add(key)
                shape = list(obj.shape) if numbers == obj.numel() else [int(numbers)]
                found.append([name, shape, str(obj.dtype).replace("torch.", "")])
            continue
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            key = ("numpy", base.__array_interface__["data"][0], base.nbytes)
            if key not in seen_memory:
                seen_memory.add(key)
                found.append([name, list(base.shape), str(base.dtype)])
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(obj, dict):
            for i, (k, v) in enumerate(list(obj.items())):
                children += [(f"{name}[{k!r:.40}]", v), (f"{name}.key{i}", k)]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += [(f"{name}[{i}]", v) for i, v in enumerate(list(obj))]
        else:
            if callable(obj) and getattr(obj, "__closure__", None):
                children += [(f"{name}.<closure>", c.cell_contents) for c in obj.__closure__
                             if _cell_filled(c)]
            for attr in ("__defaults__", "__kwdefaults__", "args", "keywords", "func"):  # functions, partials
                if attr in ("args", "keywords", "func") and not isinstance(obj, functools.partial):
                    continue
                value = getattr(obj, attr, None)
                if value is not None:
                    children.append((f"{name}.{attr}", value))
            if hasattr(obj, "__func__"):  # a bound method: its function (closures) and its object
                children += [(f"{name}.__func__", obj.__func__), (f"{name}.__self__", obj.__self__)]
            d = getattr(obj, "__dict__", None)
            if isinstance(d, dict):
                children += [(f"{name}.{k}", v) for k, v in list(d.items())]
            for slot in getattr(type(obj), "__slots__", ()) or ():
                if isinstance(slot, str) and hasattr(obj, slot):
                    children.append((f"{name}.{slot}", getattr(obj, slot)))
            if depth == 0 or isinstance(obj, torch.nn.Module):
                for cls in type(obj).__mro__:  # the classes the student wrote: their class attributes
                    mod = getattr(cls, "__module__", "") or ""
                    if mod.split(".")[0] in ("torch", "builtins", "numpy", "helpers", "typing", "abc"):
                        continue
                    if id(cls) not in seen_objects:
                        seen_objects.add(id(cls))
                        children += [(f"{cls.__name__}.{k}", v) for k, v in list(vars(cls).items())
                                     if not k.startswith("__")]
        for child in children:
            stack.append((child[0], child[1], depth + 1))
    return found, complete


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def holdings_numbers(entries: list[list]) -> int:
    """How many numbers ``holdings`` entries hold together."""
    return int(sum(math.prod(shape) for _, shape, _ in entries))


# --------------------------------------------------------------------------- #
# The two modes of ``challenge``.
# --------------------------------------------------------------------------- #


def decode_images(obj: dict | list) -> np.ndarray | tuple:
    """The grader's inputs: ``{"dtype", "shape", "scale", "data": [...]}`` -> float32 array (values / scale);
    dtype "int64" stays int64 (the denoiser's steps t); a list of them -> a tuple of arrays."""
    if isinstance(obj, list):
        return tuple(decode_images(o) for o in obj)
    arr = np.asarray(obj["data"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    if obj["dtype"] == "int64":
        return arr
    return (arr.astype(np.float32) / np.float32(obj.get("scale", 1))).astype(np.float32)


def _write(out: Path, doc: dict) -> None:
    out.write_text(json.dumps(doc))  # the grader's pre-made file: written in place, never renamed


def _graded_run(name: str, fit: Callable, harvest: Harvest) -> None:
    """Grader mode: fit under the budget, then write the model's outputs on the test inputs."""
    src, out = harvest.input_file(name), harvest.output_file(name)
    if not src.exists():
        print(f"{name}: not graded in this run")
        return
    doc = json.loads(src.read_text())
    spec = Spec.from_data(name, doc["spec"])
    task = get_task(spec.task)
    run = run_fit(fit, task.fit_arguments(), spec.cpu_seconds)
    # cpu_seconds: the fit's own figure, shown for comparison; the grader measures the whole run from outside
    result: dict[str, Any] = {"challenge": name, "cpu_seconds": round(run.cpu_seconds, 3)}
    if run.error:
        _write(out, {**result, "error": run.error, "detail": run.detail})
        print(f"{name}: recorded for grading ({run.error})")
        return
    try:
        outputs = np.asarray(task.outputs(run.model, decode_images(doc["inputs"])))
        # 4 decimals: far finer than any threshold, and 1,000 images stay a few MB of JSON
        result["output"] = encode(np.round(outputs.astype(np.float64), 4))
    except Exception as e:  # noqa: BLE001 - the model's forward failed on the test inputs
        _write(out, {**result, "error": "raised", "detail": f"{type(e).__name__}: {str(e)[:200]}"})
        print(f"{name}: recorded for grading (the model raised)")
        return
    # after the last prediction: what the model holds then (a model that grew while predicting counts whole)
    try:
        result["holdings"], result["holdings_complete"] = holdings(run.model)
    except Exception:  # noqa: BLE001 - an attribute that raises when read: the grader says the record is unreadable
        result["holdings"], result["holdings_complete"] = None, False
    _write(out, result)
    print(f"{name}: outputs recorded for grading")


def load_spec(name: str, path: str | os.PathLike | None = None) -> Spec:
    """The public specification of challenge ``name`` from ``checks.json`` beside the notebook."""
    p = Path(path) if path is not None else Path.cwd() / CHECKS_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing: it holds this notebook's checks and challenge budgets. "
                                "Open the notebook from its own folder (or ask your instructor for the file).")
    specs = json.loads(p.read_text()).get("challenges", {})
    if name not in specs:
        raise KeyError(f"no challenge named {name!r} in {p.name}")
    return Spec.from_data(name, specs[name])


def evaluate(spec: Spec, fit: Callable) -> tuple[FitRun, float | None]:
    """Run ``fit`` under the budget and score the model on the validation split (metric or None)."""
    task = get_task(spec.task)
    X_val, y_val = task.validation()
    run = run_fit(fit, task.fit_arguments(), spec.cpu_seconds)
    if run.error:
        return run, None
    try:
        out = np.asarray(task.outputs(run.model, X_val))
    except Exception as e:  # noqa: BLE001 - the student's model: its error is the outcome
        run.error, run.detail = "raised", f"the model raised {type(e).__name__}: {str(e)[:200]}"
        return run, None
    found, complete = holdings(run.model)  # as the grader counts: after the last prediction
    run.parameters = holdings_numbers(found) if complete else spec.max_parameters + 1
    if run.parameters > spec.max_parameters:
        return run, None
    if not task.valid(out, len(y_val)):
        return run, math.nan
    return run, task.score(out, y_val)


def report(spec: Spec, run: FitRun, value: float | None) -> str:
    """What the notebook prints: the budget used, the validation figure, the thresholds, and advice."""
    if run.error == "not_implemented":
        return (f"{spec.name}: not implemented yet. Write your fit function (model and training), run its "
                "cell, then run this cell again.")
    if run.error == "over_time":
        return (f"{spec.name}: training stopped after {run.cpu_seconds:.1f} CPU s, over the budget of "
                f"{spec.cpu_seconds:g} s: train for fewer epochs or use a smaller model (the grader gives 0 points).")
    if run.error:
        return f"{spec.name}: {run.detail or run.error}; the grader would give 0 points."
    used = kernel_cpu_seconds()
    head = (f"{spec.name}: your model holds {run.parameters:,} numbers (budget {spec.max_parameters:,}: every "
            f"tensor and array it holds after its last prediction), {run.cpu_seconds:.1f} CPU s of training "
            f"(budget {spec.cpu_seconds:g} s).\n  This kernel has used {used:.1f} CPU s since it started; the "
            f"grader counts its whole run of your notebook, from a fresh kernel, against {spec.run_seconds:g} s "
            f"({spec.cpu_seconds:g} s + {spec.allowance_seconds:g} s for the kernel and the checks): run "
            "'Restart Kernel and Run All Cells' to see that figure.")
    if run.parameters > spec.max_parameters:
        return head + ("\n  Over the parameter budget: the grader gives 0 points. Use fewer or narrower layers, and "
                       "keep no other tensor (data, a table, an optimizer) on the model.")
    task = get_task(spec.task)
    if value is None or not math.isfinite(value):
        return head + (f"\n  The model's outputs are not finite numbers of shape {task.output_shape(1)[1:]} "
                       "per input (NaN or the wrong shape): the grader gives 0 points.")
    better = "higher" if task.higher_is_better else "lower"
    est = spec.fraction(value) * spec.points
    lines = [head, f"  Validation {spec.metric}: {spec.describe(value)}; full marks from {spec.describe(spec.full)} "
                   f"on the held-out test set, none at {spec.describe(spec.zero)} ({better} is better).",
             f"  On validation this would be worth about {est:.1f} / {spec.points:g} points (the grade uses the "
             "held-out test set, which only your instructor has: expect a slightly different figure)."]
    if spec.fraction(value) < 1:
        lines.append("  Not full marks yet: try " + task.advice)
    return "\n".join(lines)


def kernel_cpu_seconds() -> float:
    """CPU time (user + system) of this process since it started, its threads and the child processes it
    waited for included: at home, the figure the grader measures from outside for the whole run."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def challenge(name: str, fit: Callable, *, path: str | os.PathLike | None = None) -> None:
    """Run challenge ``name`` with your ``fit``: at home, a report on the validation split; under the
    grader, the outputs on the test inputs. Raises ``ChallengeError`` only when the grader would give
    0 points for a reason you can fix (over budget, failing, non-finite outputs)."""
    harvest = os.environ.get(HARVEST_ENV)
    if harvest:
        _graded_run(name, fit, Harvest(Path(harvest)))
        return
    spec = load_spec(name, path)
    run, value = evaluate(spec, fit)
    text = report(spec, run, value)
    if run.error or run.parameters > spec.max_parameters or value is None or not math.isfinite(value):
        raise ChallengeError(text)
    print(text)
