"""Model-design challenges on the trusted side: declared in cases.py, graded on held-out data.

An assignment's ``cases.py`` may define ``CHALLENGES``, a list of ``Challenge``. Its graded cell is
``challenge("<name>", <fit>)`` (``helpers.grading.challenges``). The design (issue 19):

- **The grader retrains within the budget**, in the sandbox, on the students' own training split:
  nothing but the notebook travels with a submission, the CPU-time budget is measured on the
  grading machine (a weights file made at home could not show how it was trained, or on what), and
  the run is seeded on one thread, so the same submission gets the same score.
- The sandbox gets the **test inputs only** (``ChallengePlan.sandbox_inputs``; a challenge is a graded
  item beside the exercises: ``autograder.authoring.plan.GradedItem``); the test targets
  (labels, clean images, future values) stay in this process, which computes the metric from the
  outputs the sandbox wrote (``ChallengePlan.score``) and turns it into points by the documented
  thresholds: full marks at or past ``full``, none at or past ``zero``, linear in between.
- Every failure is an outcome with 0 points and a reason: nothing recorded, unreadable or huge
  outputs, the fit not implemented / raising / over its CPU time, a run over its CPU budget, a model
  holding more numbers than its budget or an unreadable record of them,
  outputs of the wrong shape or not finite. The verdict shows the rounded metric and the budget used,
  never a test target or a per-sample result.

Budgets (issue 27 §1, principle 10):

- **CPU**: the grader measures, from outside the sandbox, the CPU time (user + system) of the whole
  graded run: the kernel and every process and thread of the submission, from the kernel's start to
  the end of the notebook (``processes.CpuMeter``, sampled by the sandbox's watchdog; ended children
  count through their parent's cutime/cstime). The whole run must fit ``cpu_seconds`` plus the
  challenge's ``allowance_seconds`` (kernel start, imports, the exercises' checks, the predictions;
  measured on the solution notebooks). Training in an earlier cell, in a thread or a child process,
  or lazily while predicting all count; patching the student's own clocks changes nothing. The
  in-sandbox timer around ``fit`` only stops a fit early and is shown for comparison. Not seen: the
  last sampling interval (0.2 s) of a child whose parent does not wait for it.
- **Numbers held**: after the last prediction the harness lists every tensor and array reachable
  from the model (``helpers.grading.challenges.holdings``) as plain data (name, shape, dtype) that this side
  reads with limits (``holdings_total``) and adds up. That list is still written by code running in
  the student's process: it is honest against mistakes and the known cheats (buffers, tensor
  attributes, a model that grows while predicting), but a notebook that patches the harness itself
  could misreport it; a table read from a global variable of the notebook is not held by the model
  and is not counted.

The metric itself cannot be faked: it is computed here, from targets the sandbox never sees.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autograder.course import Course, CourseError
from autograder.authoring.heldout import heldout_secret, load_heldout, secret_seed
from helpers.grading.challenges import Spec
from helpers.grading.checking import EncodingError, decode
from helpers.grading.tasks import TASKS, Task, get_task

#: Largest outputs document read per challenge (bytes): 1,000 images of 28 x 28 floats fit easily.
MAX_CHALLENGE_BYTES = 40_000_000
#: CPU seconds a graded run may use besides the fit's budget where cases.py gives none (see Challenge).
DEFAULT_ALLOWANCE = 10.0
#: The most entries a holdings record may have (one per tensor or array the model holds).
MAX_HOLDINGS = 100_000


@dataclass(frozen=True)
class Challenge:
    """One graded model-design challenge (cases.py's ``CHALLENGES``).

    name:           the grade_id of its graded cell and the first argument of ``challenge(name, fit)``
    task:           what the model does: a task of ``helpers.grading.tasks`` (digits_classifier,
                    digits_denoiser, sine_forecaster...), which also fixes the metric
    heldout:        the held-out file in ``course/heldout/`` (checked against its MANIFEST)
    metric:         the task's metric, named to be read in cases.py (checked: it must be the task's)
    full, zero:     thresholds: full marks at or past ``full``, 0 at or past ``zero``, linear between
    max_parameters: the budget of numbers the model holds: every tensor and numpy array reachable from
                    it after its last prediction (parameters, buffers, attributes; ``helpers.grading.challenges.holdings``)
    cpu_seconds:    the fit's budget of CPU time (one thread; stopped in the sandbox past it)
    allowance_seconds: CPU time the graded run may use besides: the kernel's start, the imports, the
                    exercises' checks and the predictions (measured on the solution, with margin). The whole
                    run of the notebook, every process and thread, measured from outside, must fit
                    ``cpu_seconds + allowance_seconds``
    """

    name: str
    task: str
    heldout: str
    metric: str
    full: float
    zero: float
    max_parameters: int
    cpu_seconds: float
    allowance_seconds: float = DEFAULT_ALLOWANCE
    builds_on: tuple[str, ...] = ()      # as Exercise: the scorer's cascade step reads it
    partial_credit: bool | None = None   # points are proportional by design (the thresholds)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise CourseError(f"challenge {self.name!r}: unknown task {self.task!r} (one of {sorted(TASKS)})")
        task = self.kind
        if self.metric != task.metric:
            raise CourseError(f"challenge {self.name!r}: task {self.task!r} is scored by {task.metric!r}, "
                              f"not {self.metric!r}")
        if (self.full > self.zero) != task.higher_is_better:
            raise CourseError(f"challenge {self.name!r}: for {self.metric}, full must be "
                              f"{'above' if task.higher_is_better else 'below'} zero")

    @property
    def kind(self) -> Task:
        """The task object (``helpers.grading.tasks``)."""
        return get_task(self.task)

    def public(self, points: float) -> dict:
        """What students may know (checks.json, and the sandbox's inputs file)."""
        return {"task": self.task, "metric": self.metric, "full": self.full, "zero": self.zero,
                "max_parameters": self.max_parameters, "cpu_seconds": self.cpu_seconds,
                "allowance_seconds": self.allowance_seconds, "points": points}

    def spec(self, points: float = 0.0) -> Spec:
        return Spec.from_data(self.name, self.public(points))


@functools.lru_cache(maxsize=32)
def load_challenges(cases_file: Path) -> dict[str, Challenge]:
    """An assignment's challenges by name (``CHALLENGES`` in its cases.py; none if it has none)."""
    if not cases_file.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"challenges_{cases_file.parent.name}", cases_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = list(getattr(module, "CHALLENGES", []))
    out = {c.name: c for c in found}
    if len(out) != len(found):
        raise CourseError(f"{cases_file} defines a challenge name twice")
    return out


def heldout_set(ch: Challenge, heldout_dir: Path) -> tuple[Any, Any]:
    """(inputs given to the sandbox, targets kept here) of a challenge's held-out file in
    ``heldout_dir`` (the course's ``heldout/``): the task's ``heldout`` of the file's arrays, with a
    generator drawn from the instructor's secret where the task draws (``Task.heldout_purpose``)."""
    task = ch.kind
    data = load_heldout(ch.heldout, heldout_dir)
    purpose = task.heldout_purpose
    rng = np.random.default_rng(secret_seed(heldout_secret(heldout_dir), purpose) if purpose else 0)
    return task.heldout(data, rng)


def _inputs_data(arr: np.ndarray | tuple) -> dict | list:
    """Held-out inputs as the sandbox reads them (``helpers.grading.challenges.decode_images``): integers
    where they are (uint8 pixels, scale 255; int64 steps), else floats rounded to 6 significant
    digits; a tuple of arrays (the denoiser's (x_t, t)) as a list."""
    if isinstance(arr, tuple):
        return [_inputs_data(a) for a in arr]
    if arr.dtype == np.int64:
        return {"dtype": "int64", "shape": list(arr.shape), "scale": 1, "data": arr.reshape(-1).tolist()}
    if arr.dtype == np.uint8:
        return {"dtype": "uint8", "shape": list(arr.shape), "scale": 255, "data": arr.reshape(-1).tolist()}
    return {"dtype": "float32", "shape": list(arr.shape), "scale": 1,
            "data": [float(f"{x:.6g}") for x in arr.reshape(-1).tolist()]}


@dataclass
class ChallengeResult:
    """The trusted verdict on one challenge (the same interface as an exercise's report).

    value: the metric on the held-out set (None when there is no valid output); fraction: share of
    the points. ``passed``/``total`` are 1/1 at full marks, else 0/1."""

    name: str
    spec: Spec
    value: float | None = None
    fraction: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used: str = ""
    n_test: int = 0
    partial_credit: bool | None = None
    kind: str = "not_run"

    @property
    def total(self) -> int:
        return 1

    @property
    def passed(self) -> int:
        return int(self.fraction >= 1.0)

    @property
    def ok(self) -> bool:
        return self.fraction >= 1.0

    @property
    def not_implemented(self) -> bool:
        return self.kind == "not_implemented"

    @property
    def cases(self) -> list[dict]:
        return [{"hidden": True, "ok": self.ok, "kind": self.kind, "message": "; ".join(self.problems),
                 "mistake": None}]

    def score(self, points: float, partial_credit: bool = False) -> float:
        """The points: ``points`` times the thresholds' fraction (proportional by design)."""
        return round(points * self.fraction, 2)

    def message(self, points: float, partial_credit: bool = False) -> str:
        got = self.score(points)
        mark = "✔" if self.ok else ("~" if got > 0 else "✘")
        s = self.spec
        better = "higher" if get_task(s.task).higher_is_better else "lower"
        rule = (f"full marks from {s.describe(s.full)}, none at {s.describe(s.zero)}, proportional between; "
                f"{better} is better")
        if self.value is None:
            head = f"{mark} {self.name}: {got:g} / {points:g} points ({rule})"
        else:
            head = (f"{mark} {self.name}: test {s.metric} {s.describe(self.value)} on {self.n_test:,} held-out "
                    f"{get_task(s.task).items}: {got:g} / {points:g} points ({rule})")
        lines = [head] + ([f"  - {self.used}"] if self.used else []) + [f"  - {p}" for p in self.problems[:3]]
        return "\n".join(lines) + "\n"


@dataclass
class ChallengePlan:
    """A challenge in a grading run: what the sandbox gets, and the targets it never gets."""

    exercise: Challenge
    inputs: np.ndarray | tuple  # the denoiser's: (x_t, t)
    targets: Any                # what the task's score compares with (labels, images, seeds...)
    points: float = 0.0

    def cell_timeout(self, default: int | None) -> int | None:
        """The challenge's cell trains: four times its CPU budget plus two minutes of wall-clock time (a
        busy grading host), and never less than the run's default."""
        return max(default or 0, int(4 * self.exercise.cpu_seconds + 120))

    def unscored(self, why: str) -> ChallengeResult:
        r = ChallengeResult(self.exercise.name, self.exercise.spec(self.points), n_test=len(self.targets))
        r.problems.append(why)
        return r

    def sandbox_inputs(self) -> str:
        """The text of the sandbox's ``inputs/<name>.json``: the public spec and the test inputs only."""
        return json.dumps({"challenge": self.exercise.name, "spec": self.exercise.public(self.points),
                           "inputs": _inputs_data(self.inputs)})

    def sandbox_files(self) -> dict[str, bytes]:
        """What the task withholds from the sandbox: package files replaced for the graded run
        (``Task.sandbox_files``; 15's training labels beyond the 100 it gives)."""
        return get_task(self.exercise.task).sandbox_files()

    def score(self, raw: str | None, *, shortcut_policy: str = "warn", max_bytes: int = MAX_CHALLENGE_BYTES,
              run_cpu_seconds: float | None = None) -> ChallengeResult:
        """Judge what the sandbox wrote (None: nothing). ``run_cpu_seconds``: the CPU time of the whole
        graded run (the kernel and every process and thread of the submission), measured from outside
        the sandbox by the execute step (None: not measured, which scores 0). Total: never raises
        because of ``raw``. (``shortcut_policy`` concerns exercises only.)"""
        ch = self.exercise
        r = ChallengeResult(ch.name, ch.spec(self.points), n_test=len(self.targets))

        def zero(kind: str, why: str) -> ChallengeResult:
            r.kind, r.fraction, r.value = kind, 0.0, None
            r.problems.append(why)
            return r

        if raw is None:
            return zero("not_run", "no outputs were recorded: the challenge cell did not run (an error "
                                   "before it, a time limit, or the kernel died?)")
        if len(raw) > max_bytes:
            return zero("malformed", f"the recorded outputs are larger than {max_bytes // 1_000_000} MB")
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("challenge") != ch.name:
                raise ValueError
        except (ValueError, TypeError, RecursionError, MemoryError):
            return zero("malformed", "the recorded outputs were unreadable")
        error = doc.get("error")
        if error is not None:
            if error == "not_implemented":
                return zero("not_implemented", "not implemented yet")
            if error == "over_time":
                return zero("over_budget", f"training went over its budget of {ch.cpu_seconds:g} CPU s "
                                           "and was stopped")
            if error == "interrupted":
                return zero("over_budget", "training was stopped by the grader's wall-clock limit for this cell "
                                           f"({int(4 * ch.cpu_seconds + 120)} s) before its CPU budget ran out")
            if error == "not_a_module":
                return zero("error", "your fit did not return an nn.Module")
            return zero("error", "your fit or your model raised an exception")  # its text may echo test data
        run_budget = ch.cpu_seconds + ch.allowance_seconds
        cpu = run_cpu_seconds
        if cpu is None or not math.isfinite(cpu):
            return zero("not_run", "the grader could not measure the CPU time of the run")
        numbers = holdings_total(doc.get("holdings"), doc.get("holdings_complete"))
        if numbers is None:
            return zero("malformed", "the record of what your model holds was missing or unreadable")
        fit = doc.get("cpu_seconds")
        own = (f"; your fit by its own clock: {fit:.1f} s" if type(fit) in (int, float) and math.isfinite(fit)
               and 0 <= fit < 1e6 else "")
        r.used = (f"your model holds {numbers:,} numbers (budget {ch.max_parameters:,}); the graded run used "
                  f"{cpu:.1f} CPU s (budget {run_budget:g} s: {ch.cpu_seconds:g} s of training + "
                  f"{ch.allowance_seconds:g} s for the kernel and the checks{own})")
        if cpu > run_budget:
            r.used = ""
            return zero("over_budget", f"the graded run of your notebook used {cpu:.1f} CPU s (every cell, every "
                                       f"process and thread, measured by the grader), over its budget of "
                                       f"{run_budget:g} s ({ch.cpu_seconds:g} s of training + "
                                       f"{ch.allowance_seconds:g} s for the kernel and the checks{own})")
        if numbers > ch.max_parameters:
            r.used = ""
            return zero("over_budget", f"the model holds {numbers:,} numbers (every tensor and array it holds "
                                       f"after its last prediction), over the budget of {ch.max_parameters:,}")
        try:
            out = decode(doc.get("output"))
            if not isinstance(out, np.ndarray):
                raise EncodingError("not an array")
        except EncodingError:
            return zero("malformed", "the model's outputs are not plain numbers")
        except Exception:  # noqa: BLE001 - deep, huge, odd: this challenge's failure, never the batch's
            return zero("malformed", "the model's outputs are not plain numbers")
        task = ch.kind
        want = task.output_shape(len(self.targets))
        if out.shape != want:
            return zero("wrong", f"the model's outputs have shape {tuple(out.shape)}, expected {want} "
                                 f"({want[1:]} per input)")
        if not np.all(np.isfinite(out)):
            return zero("wrong", "the model's outputs hold NaN or infinite values")
        try:
            value = float(task.score(out, self.targets))
        except Exception:  # noqa: BLE001 - outputs the task cannot score (e.g. an action out of range)
            return zero("wrong", "the model's outputs could not be scored")
        if not math.isfinite(value):
            return zero("wrong", "the model's outputs could not be scored")
        r.value = round(value, 4) if ch.metric == "accuracy" else float(f"{value:.4g}")
        r.fraction = r.spec.fraction(r.value)
        r.kind = "passed" if r.fraction >= 1 else "wrong"
        return r


def holdings_total(entries: Any, complete: Any) -> int | None:
    """How many numbers a holdings record (``helpers.grading.challenges.holdings``: ``[[name, shape, dtype], ...]``)
    adds up to; None when it is missing, malformed, larger than MAX_HOLDINGS entries, or the walk was
    not complete. Total: never raises because of what it is given."""
    if complete is not True or not isinstance(entries, list) or len(entries) > MAX_HOLDINGS:
        return None
    total = 0
    for e in entries:
        if not (isinstance(e, list) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[2], str)
                and isinstance(e[1], list) and len(e[1]) <= 32
                and all(type(d) is int and 0 <= d < 2 ** 48 for d in e[1])):
            return None
        total += math.prod(e[1])
        if total > 2 ** 62:
            return None
    return total


def challenge_plans(course: Course, aid: str, points: dict[str, float] | None = None) -> dict[str, ChallengePlan]:
    """The challenges of an assignment as plans (empty when it has none). points: by name, for the
    spec shown in the sandbox (defaults to the graded cell's points in the source notebook)."""
    found = load_challenges(course.cases_file(aid))
    if not found:
        return {}
    pts = cell_points(course.source_notebook(aid)) if points is None else points
    plans = {}
    for name, ch in found.items():
        inputs, targets = heldout_set(ch, course.root / "heldout")
        plans[name] = ChallengePlan(ch, inputs, targets, float(pts.get(name, 0.0)))
    return plans


def cell_points(notebook: Path) -> dict[str, float]:
    """The points of every graded cell of a notebook, by grade_id."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def visible_specs(course: Course, aid: str) -> dict[str, Any]:
    """checks.json's ``"challenges"`` entry: each challenge's public spec (empty when none)."""
    found = load_challenges(course.cases_file(aid))
    if not found:
        return {}
    pts = cell_points(course.source_notebook(aid))
    return {"challenges": {name: ch.public(pts.get(name, 0.0)) for name, ch in found.items()}}


def heldout_files(course: Course, aids: list[str]) -> list[Path]:
    """The held-out files (and their manifest) the challenges of ``aids`` need: they travel to the
    grading workers with the plans (trusted processes), never into a sandbox. The denoiser's test
    noise is drawn from the secret at grading time, so SECRET travels too where a denoiser is graded."""
    found = [ch for aid in aids for ch in load_challenges(course.cases_file(aid)).values()]
    names = sorted({ch.heldout for ch in found})
    secret = [course.root / "heldout" / "SECRET"] if any(ch.kind.heldout_purpose for ch in found) else []
    return [course.root / "heldout" / "MANIFEST.json", *secret, *(course.root / "heldout" / n for n in names)] if names else []
