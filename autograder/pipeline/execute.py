"""nbgrader's Execute step, run in the sandbox with the grader's inputs.

Before the kernel starts, the trusted process writes, for every exercise, the
inputs of this run's plan into the grader's folder (``helpers.grading.contract.Harvest``).
The restored test cells call ``check(name, func)``, which in the sandbox only calls
the student's function and records what happened. After the run, ``TrustedScores``
judges those records against the same plan. Every limit comes from
``autograder.config.SandboxPolicy``. What happened (timeouts,
a dead kernel, the time limit) is recorded in ``resources["autograder"]``. A kernel that does not
answer the interrupt after a cell's time limit is stopped: every later cell would wait its whole
limit behind the stuck one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from queue import Empty
from pathlib import Path

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, List, Unicode

from autograder.sandbox import kernel as sandbox
from autograder.sandbox import warm
from autograder.authoring.plan import GradedItem, graded_items
from autograder.config import SandboxPolicy
from autograder.config import GradingSettings, course_from_config
from helpers.grading.contract import Harvest


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


def _workdir_base(extra: int = 0) -> str | None:
    """Where per-notebook folders go: the usual temporary folder, unless its path is so long that
    the kernel's unix sockets (``<workdir>/kernel/ipc-N``) would pass the 107-byte limit. ``extra``:
    the characters a folder between adds (a warm template's spool: ``autograder-warm-XXXXXXXX/``)."""
    return None if len(tempfile.gettempdir()) + extra <= 60 else "/tmp"


class SandboxedExecute(Execute):
    """Execute a submission in the sandbox; never let it stop the batch."""

    skip_tags = List(Unicode(), default_value=["demo"],
                     help="Cells with one of these tags are not run when grading.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        settings = GradingSettings(config=self.config)
        course = course_from_config(self.config)
        info = resources["nbgrader"]
        record = resources.setdefault("autograder", {"events": []})
        seed = settings.resolved_seed(course)
        # every graded item (exercises and challenges): the sandbox gets their inputs only
        plan = graded_items(course, info["assignment"], seed)
        self.timeout_func = self._cell_timeout  # each graded cell's own limit (a challenge's trains)
        self._plan = plan
        record["plan"], record["seed"] = plan, seed  # the scorer judges against exactly this plan
        self._limits = policy = SandboxPolicy(config=self.config)
        self.timeout = policy.cell_timeout
        self.notebook_timeout, self.max_output_bytes = policy.notebook_timeout, policy.output_bytes
        self._unsafe = settings.unsafe_no_sandbox
        for attempt in (1, 2):  # a kernel that fails to start is retried once, in a fresh sandbox
            # warm: forked from this process's template, in a folder of the template's spool
            self._template = (warm.template(policy, _workdir_base(extra=len("/autograder-warm-XXXXXXXX")))
                              if settings.warm_kernels and not self._unsafe else None)
            base = str(self._template.spool) if self._template is not None else _workdir_base()
            workdir = Path(tempfile.mkdtemp(prefix="autograder-", dir=base))
            uid = sandbox.new_kernel_uid()
            km = None
            self._watchdog = None
            self._workdir, self._uid = workdir, uid
            try:
                self._stage(workdir, course.source_dir / info["assignment"], plan, uid)
                km = self._kernel_manager(workdir, settings, policy, uid)
                self._km_ref = km
                self._kernel_process: tuple[int, int | None] | None = None  # (pid, start time) once it runs
                resources.setdefault("metadata", {})["path"] = str(workdir / "work")
                self._deadline = time.monotonic() + self.notebook_timeout
                self._output_bytes = 0
                self._record = record
                self._stuck = False  # set when the kernel did not answer an interrupt
                self._waiting_for: str | None = None  # the execute request a cell's timeout interrupts
                try:
                    nb, resources = super().preprocess(nb, resources, km=km)
                except DeadKernelError:
                    why = self._watchdog.reason if self._watchdog and self._watchdog.reason else None
                    record["events"].append(why or ("kernel died: the cells after it were not run"
                                                    + _last_words(workdir / "kernel.log")))
                except warm.WarmUnavailable as e:  # this submission and the later ones start cold
                    warm.disable(str(e))
                    if attempt == 1:
                        continue
                    raise RuntimeError(f"the kernel failed to start twice ({e})") from None
                except (RuntimeError, TimeoutError) as e:
                    if "kernel_info" not in str(e) and not isinstance(e, TimeoutError):
                        raise
                    if attempt == 1:
                        continue
                    raise RuntimeError("the kernel failed to start twice" + _last_words(workdir / "kernel.log"))
                if self._watchdog and self._watchdog.reason and self._watchdog.reason not in record["events"]:
                    record["events"].append(self._watchdog.reason)
                if self._watchdog is not None:  # the run's CPU time, measured from outside, for the scorer
                    record["cpu_seconds"] = self._watchdog.cpu.sample(self._kernel_pids())
                self._stop_kernel(km, uid)  # nothing of the submission runs while its outputs are read
                km = None
                record["outputs"] = self._collect_outputs(workdir, policy.results_bytes)
                return nb, resources
            finally:
                if self._watchdog is not None:
                    self._watchdog.stop()
                self._stop_kernel(km, uid)
                shutil.rmtree(workdir, ignore_errors=True)
        return nb, resources

    def _cell_timeout(self, cell) -> int | None:
        """nbclient's ``timeout_func``: a graded cell's limit comes from its item, any other cell's is
        the policy's ``cell_timeout``."""
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") if cell is not None else None
        item = self._plan.get(gid) if gid else None
        return item.cell_timeout(self.timeout) if item is not None else self.timeout

    # -- the kernel's life ----------------------------------------------------

    def start_new_kernel_client(self):
        """Once the kernel answers: lock its folder and start watching its resources."""
        from autograder.sandbox import processes

        pid = getattr(getattr(self._km_ref, "provisioner", None), "pid", None)  # launched, not yet answering
        self._kernel_process = (pid, processes.start_time(pid)) if pid else None
        kc = super().start_new_kernel_client()
        if not self._unsafe:
            sandbox.lock_kernel_dir(self._workdir)
        self._watchdog = sandbox.Watchdog(self._limits, self._workdir, self._kernel_pids, self._kill_kernel)
        self._watchdog.start()
        return kc

    def _kernel_pids(self) -> set[int]:
        """Every process of this submission: the sandbox's uid (as root), else the kernel's tree."""
        from autograder.sandbox import processes

        pid, started = getattr(self, "_kernel_process", None) or (None, None)
        # Once the kernel has exited and been reaped, its number may belong to another process: never that one.
        alive = pid is not None and started is not None and processes.start_time(pid) == started
        pids = processes.descendants(pid) | {pid} if alive else set()
        if os.geteuid() == 0 and not self._unsafe:
            pids |= {p for p, (_pp, u) in processes.all_processes().items() if u == self._uid}
        return pids

    def _kill_kernel(self) -> None:
        from autograder.sandbox import processes

        for pid in self._kernel_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if os.geteuid() == 0 and not self._unsafe:
            processes.kill_uid(self._uid)

    def _stop_kernel(self, km, uid: int) -> None:
        """The kernel ends with its submission: nbclient leaves a kernel it did not create running."""
        if km is None:
            return
        kc = getattr(self, "kc", None)
        if kc is not None:
            try:
                kc.stop_channels()
            except Exception:  # noqa: BLE001 - already closed
                pass
            self.kc = None
        self._kill_kernel()
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - the kernel is already gone (we killed it)
            pass
        try:
            run_sync(km.cleanup_resources)()
        except Exception:  # noqa: BLE001
            pass
        self.km = None

    # -- set-up -------------------------------------------------------------

    def _stage(self, workdir: Path, source: Path, plan: dict[str, GradedItem], uid: int) -> None:
        harvest = Harvest.in_workdir(workdir)
        for folder in (workdir / "work", harvest.inputs):
            folder.mkdir(parents=True, exist_ok=True)
        ignore = set(self.config.CourseDirectory.get("ignore", [])) | {"cases.py"}
        for f in source.iterdir():  # the assignment's public files, from the trusted source
            if f.is_file() and not f.is_symlink() and f.suffix != ".ipynb" and f.name not in ignore:
                shutil.copyfile(f, workdir / "work" / f.name)
        for name, ex_plan in plan.items():
            harvest.input_file(name).write_text(ex_plan.sandbox_inputs())
        replaced: dict[str, bytes] = {}
        for ex_plan in plan.values():
            replaced.update(ex_plan.sandbox_files())
        self._overlays = sandbox.write_overlays(workdir, replaced)  # bound over the package's own files
        sandbox.prepare_workdir(workdir, list(plan), uid)  # output files, ownership and modes

    def _kernel_manager(self, workdir: Path, settings: GradingSettings, policy: SandboxPolicy,
                        uid: int) -> sandbox.SandboxedKernelManager:
        env = sandbox.kernel_env(workdir)
        km = sandbox.SandboxedKernelManager(config=self.config, transport="ipc",
                                           ip=str(workdir / "kernel" / "ipc"))
        km.client_class = "autograder.sandbox.kernel.BoundedKernelClient"
        km.connection_file = str(workdir / "kernel" / "connection.json")
        km.log_path = str(workdir / "kernel.log")
        km.uid = uid
        if settings.unsafe_no_sandbox:  # same clean environment, no walls
            env.update(HOME=str(workdir / "work"), MPLCONFIGDIR=str(workdir / "work" / ".mpl"))
            km.command_prefix = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        elif self._template is not None:
            km.warm = self._template
            km.log = warm.kernel_log(km.log)
            km.warm_request = warm.kernel_request(workdir, policy, env, uid, self._overlays,
                                                  Path(km.connection_file), self._template.spool)
        else:
            km.command_prefix = sandbox.sandbox_command(workdir, policy, env, uid, overlays=self._overlays)
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
        if cell.cell_type == "code" and self._stuck:
            cell.outputs = [_error_output("KernelNotResponding",
                                         "not run: the kernel did not answer after a cell's time limit (does an "
                                         "earlier cell block outside Python, or replace a built-in?)")]
            return cell, resources
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

    async def _async_poll_for_reply(self, msg_id: str, cell: NotebookNode, timeout: int | None,
                                    task_poll_output_msg, task_poll_kernel_alive) -> dict:
        self._waiting_for = msg_id
        return await super()._async_poll_for_reply(msg_id, cell, timeout, task_poll_output_msg,
                                                   task_poll_kernel_alive)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        self._record["events"].append(f"a cell timed out after {timeout} s and was interrupted")
        reply = await super()._async_handle_timeout(timeout, cell)
        if cell is None or self._waiting_for is None:  # the wait for kernel_info at start: no cell ran
            return reply
        grace = self._limits.interrupt_timeout
        if not await self._interrupt_answered(grace):
            if not (self._watchdog and self._watchdog.reason):  # else the watchdog stopped it, and says why
                self._record["events"].append(f"the kernel did not answer the interrupt within {grace} s and "
                                              "was stopped: the cells after it were not run")
            self._stuck = True
            self._kill_kernel()  # it would hold its CPU until the end of the notebook
        return reply

    async def _interrupt_answered(self, grace: float) -> bool:
        """Whether the interrupted cell's execute_reply arrives within ``grace`` seconds (a kernel
        stuck outside Python's reach, or whose IPython the submission broke, never sends it)."""
        assert self.kc is not None
        deadline = time.monotonic() + grace
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if msg["parent_header"].get("msg_id") == self._waiting_for:
                return True
        return False

    #: iopub messages whose content counts against the output limit (display updates and widget
    #: state included); status and execute_input carry no output and are never dropped.
    COUNTED = {"stream", "display_data", "execute_result", "error", "update_display_data", "clear_output",
               "comm_open", "comm_msg", "comm_close"}

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):
        if msg.get("msg_type") in self.COUNTED:
            self._output_bytes += len(json.dumps(msg.get("content", {}), default=str))
            if self._output_bytes > self.max_output_bytes:
                if not any("output limit" in e for e in self._record["events"]):
                    self._record["events"].append(f"output limit ({self.max_output_bytes} bytes) reached: "
                                                  "later output dropped")
                    cell.outputs.append(NotebookNode(output_type="stream", name="stderr",
                                                     text="[output limit reached: the rest was dropped]\n"))
                return None
        return super().process_message(msg, cell, cell_index)

    # -- results ------------------------------------------------------------

    @staticmethod
    def _collect_outputs(workdir: Path, max_bytes: int) -> dict[str, str]:
        """Raw text of each exercise's output file (parsed and validated by the scorer)."""
        found: dict[str, str] = {}
        for f in Harvest.in_workdir(workdir).outputs.iterdir():
            if f.suffix == ".json" and f.is_file() and not f.is_symlink() and f.stat().st_size > 0:
                with f.open("rb") as handle:  # at most max_bytes + 1: the scorer says it is too large
                    found[f.stem] = handle.read(max_bytes + 1).decode(errors="replace")
        return found
