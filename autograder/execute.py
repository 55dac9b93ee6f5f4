"""nbgrader's Execute step, run in the sandbox with the grader's inputs.

Before the kernel starts, the trusted process writes, for every exercise, the
inputs it chose for this run (``grader/inputs/<exercise>.json``). The restored
test cells call ``check(name, func)``, which in the sandbox only calls the
student's function and writes the outputs (``grader/outputs``). After the run,
``TrustedScores`` reads those outputs and scores them. What happened (timeouts,
a dead kernel, the time limit) is recorded in ``resources["autograder"]``.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from autograder import sandbox
from autograder.settings import GradingSettings, course_from_config


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def _last_words(log: Path) -> str:
    """The kernel process's last line of console output (e.g. MemoryError), if any."""
    try:
        lines = [l for l in log.read_bytes()[-4000:].decode(errors="replace").splitlines()
                 if re.search(r"Error|Killed|Terminated|Abort|Segmentation", l)]
    except OSError:
        return ""
    return f" (last output: {lines[-1][:160]})" if lines else ""


class SandboxedExecute(Execute):
    """Execute a submission in the sandbox; never let it stop the batch."""

    notebook_timeout = Integer(600, help="Wall-clock limit for a whole notebook (s).").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per notebook; the rest is dropped.").tag(config=True)
    skip_tags = List(Unicode(), default_value=["demo"],
                     help="Cells with one of these tags are not run when grading.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        settings = GradingSettings(config=self.config)
        course = course_from_config(self.config)
        info = resources["nbgrader"]
        record = resources.setdefault("autograder", {"events": []})
        from autograder.plan import grading_plan

        plan = grading_plan(course.root, info["assignment"], settings.resolved_seed(course))
        for attempt in (1, 2):  # a kernel that fails to start is retried once, in a fresh sandbox
            workdir = Path(tempfile.mkdtemp(prefix="autograder-"))
            try:
                uid = sandbox.new_kernel_uid()
                self._stage(workdir, course.source_dir / info["assignment"], plan, uid)
                km = self._kernel_manager(workdir, settings, uid)
                resources.setdefault("metadata", {})["path"] = str(workdir / "work")
                self._deadline = time.monotonic() + self.notebook_timeout
                self._output_bytes = 0
                self._record = record
                try:
                    nb, resources = super().preprocess(nb, resources, km=km)
                except DeadKernelError:
                    record["events"].append("kernel died: the cells after it were not run"
                                            + _last_words(workdir / "kernel.log"))
                except (RuntimeError, TimeoutError) as e:
                    if "kernel_info" not in str(e) and not isinstance(e, TimeoutError):
                        raise
                    if attempt == 1:
                        continue
                    raise RuntimeError("the kernel failed to start twice" + _last_words(workdir / "kernel.log"))
                record["outputs"] = self._collect_outputs(workdir)
                return nb, resources
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        return nb, resources

    # -- set-up -------------------------------------------------------------

    def _stage(self, workdir: Path, source: Path, plan: dict, uid: int) -> None:
        for sub in ("work", "grader/inputs"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        ignore = set(self.config.CourseDirectory.get("ignore", [])) | {"cases.py"}
        for f in source.iterdir():  # the assignment's public files, from the trusted source
            if f.is_file() and not f.is_symlink() and f.suffix != ".ipynb" and f.name not in ignore:
                shutil.copyfile(f, workdir / "work" / f.name)
        inputs = workdir / "grader" / "inputs"
        for name, ex_plan in plan.items():
            (inputs / f"{name}.json").write_text(json.dumps(ex_plan.sandbox_inputs()))
        sandbox.prepare_workdir(workdir, list(plan), uid)  # output files, ownership and modes

    def _kernel_manager(self, workdir: Path, settings: GradingSettings, uid: int) -> sandbox.SandboxedKernelManager:
        env = sandbox.kernel_env(workdir)
        km = sandbox.SandboxedKernelManager(config=self.config, transport="ipc",
                                           ip=str(workdir / "kernel" / "ipc"))
        km.connection_file = str(workdir / "kernel" / "connection.json")
        km.log_path = str(workdir / "kernel.log")
        km.uid = uid
        if settings.unsafe_no_sandbox:  # same clean environment, no walls
            env.update(HOME=str(workdir / "work"), MPLCONFIGDIR=str(workdir / "work" / ".mpl"))
            km.command_prefix = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        else:
            km.command_prefix = sandbox.sandbox_command(workdir, settings.limits(), env, uid)
        return km

    # -- execution ----------------------------------------------------------

    raise_on_iopub_timeout = Bool(False, help="A kernel that stops sending output is a cell timeout, "
                                              "not a reason to abandon the notebook.").tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int):
        if set(cell.get("metadata", {}).get("tags", [])) & set(self.skip_tags):
            return cell, resources
        try:
            return self._run_cell(cell, resources, index)
        except CellTimeoutError:
            self._record["events"].append("a cell stopped responding and was abandoned")
            cell.outputs.append(_error_output("CellTimeoutError", "the cell stopped responding"))
            return cell, resources

    def _run_cell(self, cell: NotebookNode, resources: dict, index: int):
        if cell.cell_type == "code" and time.monotonic() > self._deadline:
            cell.outputs = [_error_output("NotebookTimeLimit",
                                          f"not run: the notebook used its {self.notebook_timeout} s")]
            if not any("time limit" in e for e in self._record["events"]):
                self._record["events"].append(f"notebook time limit ({self.notebook_timeout} s) reached")
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        timeout = super()._get_timeout(cell)
        left = max(1, int(self._deadline - time.monotonic()))
        return left if timeout is None else min(timeout, left)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        self._record["events"].append(f"a cell timed out after {timeout} s and was interrupted")
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list, msg: dict, display_id: Any, cell_index: int):
        size = len(json.dumps(msg.get("content", {}), default=str))
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            if not any("output limit" in e for e in self._record["events"]):
                self._record["events"].append(f"output limit ({self.max_output_bytes} bytes) reached: "
                                              "later output dropped")
                outs.append(NotebookNode(output_type="stream", name="stderr",
                                         text="[output limit reached: the rest was dropped]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)

    # -- results ------------------------------------------------------------

    @staticmethod
    def _collect_outputs(workdir: Path, max_bytes: int = 50_000_000) -> dict[str, str]:
        """Raw text of each exercise's output file (parsed and validated by the scorer)."""
        found: dict[str, str] = {}
        out_dir = workdir / "grader" / "outputs"
        for f in out_dir.iterdir():
            if f.suffix == ".json" and f.is_file() and not f.is_symlink() and f.stat().st_size > 0:
                if f.stat().st_size <= max_bytes:
                    found[f.stem] = f.read_text(errors="replace")
                else:
                    found[f.stem] = ""
        return found
