"""Running jobs: the local process pool and a Dask cluster, behind one small interface.

``pool.results(fn, jobs, lost)`` yields ``(job, Result)`` as jobs finish; ``pool.on_each_worker(fn, job)``
runs one job on every worker (the canary). ``fn(bundle, job)`` runs in a worker and returns a
``Result``; what it sends back travels as plain data (msgpack: no pickle is read from a worker) and is
believed only through ``Handlers.accept``. A worker lost mid-batch has its tasks rescheduled on the
others by Dask's scheduler (up to ``distributed.scheduler.allowed-failures`` times); a job whose every
attempt lost its worker comes back from ``lost``.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from autograder.run.jobs import MAX_ANSWER_BYTES, Bundle, Job, Result, remote, result_data
from autograder.run.tls import check_workers, dask_client

#: How long a Dask batch waits with no worker connected before its remaining work is "run again".
NO_WORKERS_S = 120


Lost = Callable[[Job, str], Result]


@dataclass(frozen=True)
class Handlers:
    """What a pool needs from the layer that grades, as functions: the pools themselves know nothing
    of grading, plans or the course.

    accept(job, data, sender) -> Result   believe a worker's answer (plain data), or a failed result
    fail(job, reason) -> Result           a result saying the job was not graded, and why
    stage(bundle)                         make the bundle ready in this process (the local pool calls
                                          it before forking, so its workers inherit the staged copy)
    unstage(key)                          remove what ``stage`` made (here, and on every Dask worker)
    """

    accept: Callable[[Job, Any, str], Result]
    fail: Callable[[Job, str], Result]
    stage: Callable[[Bundle], Any] = lambda bundle: None
    unstage: Callable[[str], None] = lambda key: None


def _answer_in_a_file(fn, folder: str, bundle: Bundle, job: Job) -> str:
    """``fn(bundle, job)`` in a pool worker; its result, as plain data (:func:`result_data`, in msgpack),
    goes to a new file of ``folder`` (0600, in a 0700 folder), whose path is returned.

    A result (the autograded notebook, the feedback page) is far larger than a pipe's buffer, and the
    pool's reader waits for a whole message: a worker killed half-way through sending it would hold
    the coordinator forever. A path is a few hundred bytes, written to the pipe at once (under
    PIPE_BUF); the file appears whole or not at all (written aside, then renamed)."""
    import msgpack

    data = result_data(fn(bundle, job))
    fd, part = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(msgpack.packb(data, use_bin_type=True))
    path = part[: -len(".part")] + ".result"
    os.replace(part, path)
    return path


def _read_answer(job: Job, path: str, accept: Callable[[Job, Any, str], Result]) -> Result:
    """The result of ``job`` that :func:`_answer_in_a_file` left at ``path`` (the file is removed)."""
    import msgpack

    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_ANSWER_BYTES + 1)
    finally:
        os.unlink(path)
    try:
        data = msgpack.unpackb(blob, raw=False, max_bin_len=MAX_ANSWER_BYTES, max_str_len=MAX_ANSWER_BYTES)
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: that submission's outcome
        data = f"unreadable ({type(e).__name__})"
    return accept(job, data, "the grading process")


class LocalPool:
    """Jobs in forked worker processes of this machine (or in this process with one worker).

    The bundle is staged here first (``handlers.stage``): forked workers inherit the staged folder
    and the plans computed for it, and get only the bundle's key (``Bundle.ref``). At most ``2 * workers`` jobs
    are in flight (the coordinator's memory does not grow with the batch). A worker that dies
    breaks the pool: the jobs in flight come back from ``lost``, the rest go on in a new pool.
    Workers hand back each result as a file of a private folder (:func:`_answer_in_a_file`)."""

    def __init__(self, workers: int, bundle: Bundle, handlers: Handlers):
        self.workers = max(1, workers)
        self.key = bundle.key
        self.handlers = handlers
        handlers.stage(bundle)
        self.bundle = bundle.ref()
        self.canaries = dict(bundle.canaries)
        self.answers = tempfile.mkdtemp(prefix="autograder-answers-")
        os.chmod(self.answers, 0o700)  # the results, this user's only

    def close(self) -> None:
        self.handlers.unstage(self.key)
        shutil.rmtree(self.answers, ignore_errors=True)

    def _submit(self, pool: cf.ProcessPoolExecutor, fn, job: Job) -> cf.Future:
        return pool.submit(_answer_in_a_file, fn, self.answers, self.bundle, job)

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))

    def on_each_worker(self, fn, job: Job) -> dict[str, Result]:
        """``fn(bundle, job)`` in a fresh worker process (the coordinator never hosts a kernel)."""
        with self._pool(1) as pool:
            return {"this machine": _read_answer(job, self._submit(pool, fn, job).result(), self.handlers.accept)}

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from concurrent.futures.process import BrokenProcessPool

        jobs = iter(jobs)
        if self.workers == 1:
            for job in jobs:
                yield job, self.handlers.accept(job, result_data(fn(self.bundle, job)), "the grading process")
            return
        pool = self._pool(self.workers)
        inflight: dict[cf.Future, Job] = {}
        again: list[Job] = []  # taken from ``jobs`` but not accepted by a pool that broke meanwhile
        try:
            while True:
                broken = False
                while len(inflight) < 2 * self.workers:
                    job = again.pop() if again else next(jobs, None)
                    if job is None:
                        break
                    try:
                        inflight[self._submit(pool, fn, job)] = job
                    except BrokenProcessPool:  # a worker died while this process was writing a result
                        again.append(job)
                        broken = True
                        break
                if not inflight and not broken:
                    return
                if not broken:
                    done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        job = inflight.pop(future)
                        try:
                            yield job, _read_answer(job, future.result(), self.handlers.accept)
                        except BrokenProcessPool:
                            broken = True
                            yield job, lost(job, "worker died")
                        except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                            yield job, self.handlers.fail(job, f"internal error: {str(e)[:300]}")
                if broken:  # every job still in this pool is lost with it; the rest go to a new one
                    for future, job in list(inflight.items()):
                        cf.wait([future])
                        if future.exception() is None:
                            yield job, _read_answer(job, future.result(), self.handlers.accept)
                        else:
                            yield job, lost(job, "worker died")
                    inflight.clear()
                    pool.shutdown(wait=True)
                    pool = self._pool(self.workers)
        finally:
            for future in inflight:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def probe(address: str, certs: str = "", insecure: bool = False,
          warn: Callable[[str], None] | None = None) -> list[str]:
    """Connect to the scheduler at ``address`` and check its workers (``check_workers``)."""
    client = dask_client(address, certs, insecure, warn)
    try:
        return check_workers(client)
    finally:
        client.close()


#: How often a job refused by a worker the scheduler cannot name (it left meanwhile) is sent again.
MAX_UNNAMED_REFUSALS = 3


class DaskPool:
    """Jobs on a Dask cluster: the bundle scattered once to every worker, one task per job.

    ``results(fn, jobs)`` yields ``(job, Result)`` in completion order; a job whose task lost
    its worker too often (``KilledWorker``) or found no worker for ``NO_WORKERS_S`` seconds
    yields a failed result (``handlers.fail``) saying to run again (``lost`` tells them apart). A worker
    that refuses a job (its canary failed, or it runs several tasks at once;
    workers that join after the start check themselves on their first job) gets no more jobs,
    is named once through ``warn``, and its job goes to another worker."""

    def __init__(self, address: str, bundle: Bundle, handlers: Handlers, warn: Callable[[str], None] | None = None,
                 certs: str = "", insecure: bool = False):
        self.client = dask_client(address, certs, insecure)
        self.address = address
        try:
            self.workers = check_workers(self.client)
            self.bundle = self.client.scatter(bundle, broadcast=True, hash=False)
        except BaseException:
            self.client.close()
            raise
        self.key = bundle.key
        self.handlers = handlers
        self.canaries = dict(bundle.canaries)
        self.refusing: dict[str, str] = {}  # worker address -> why it grades nothing
        self.warn = warn or (lambda text: print(text, file=sys.stderr))

    def close(self) -> None:
        try:
            self.client.run(self.handlers.unstage, self.key)
        except Exception:  # noqa: BLE001 - a worker gone already: its temporary folder went with it
            pass
        self.client.close()

    def on_each_worker(self, fn, job: Job) -> dict[str, Result]:
        """``fn(bundle, job)`` once on every worker (the canary)."""
        futures = {w: self.client.submit(remote, fn, self.bundle, job, workers=[w], allow_other_workers=False,
                                         pure=False, key=f"canary-{job.assignment}-{uuid.uuid4().hex}")
                   for w in self.workers}
        results = {}
        for w, f in futures.items():
            try:
                results[w] = self.handlers.accept(job, f.result(), f"the Dask worker {w}")
            except TypeError as e:  # not plain data (msgpack): never unpickled here
                results[w] = self.handlers.fail(job, f"the worker's answer is not plain data ({str(e)[:120]})")
            except Exception as e:  # noqa: BLE001 - the worker died (the function returns its own failures)
                results[w] = self.handlers.fail(job, f"the worker was lost while grading it ({type(e).__name__})")
        return results

    def _grading_workers(self) -> list[str]:
        """The workers that may take a job now: those connected, less those that refused."""
        return sorted(w for w in self.client.scheduler_info().get("workers", {}) if w not in self.refusing)

    def _submit(self, fn, job: Job):
        """A future for ``job``, kept off the refusing workers; None when no worker is left."""
        kw: dict[str, Any] = {}
        if self.refusing:
            allowed = self._grading_workers()
            if not allowed:
                return None
            kw = {"workers": allowed, "allow_other_workers": False}
        return self.client.submit(remote, fn, self.bundle, job, pure=False,
                                  key=f"grade-{job.assignment}-{uuid.uuid4().hex}", **kw)

    def _ran_on(self, future) -> str:
        """The worker that holds ``future``'s result, as the scheduler knows it (never as it says itself)."""
        try:
            held = self.client.who_has([future]).get(future.key, ())
        except Exception:  # noqa: BLE001 - gone meanwhile
            return ""
        return held[0] if len(held) == 1 else ""

    def results(self, fn, jobs: Iterable[Job], lost: Lost) -> Iterator[tuple[Job, Result]]:
        from distributed import wait
        from distributed.client import FutureCancelledError, FuturesCancelledError
        from distributed.scheduler import KilledWorker

        jobs = iter(jobs)
        again: list[Job] = []  # refused by a worker: to be sent to another
        refusals: dict[tuple[str, str], int] = {}
        inflight: dict[Any, Job] = {}
        alone_since = None
        try:
            while True:
                window = 2 * max(1, len(self._grading_workers()))
                while len(inflight) < window:
                    job = again.pop() if again else next(jobs, None)
                    if job is None:
                        break
                    future = self._submit(fn, job)
                    if future is None:
                        yield job, lost(job, "no worker can grade it")
                        continue
                    inflight[future] = job
                if not inflight:
                    return
                try:
                    wait(list(inflight), timeout=5, return_when="FIRST_COMPLETED")
                except (TimeoutError, FuturesCancelledError):  # each future is looked at below
                    pass
                done = [f for f in inflight if f.done()]
                for future in done:
                    job = inflight.pop(future)
                    try:
                        data = future.result()
                    except (KilledWorker, FutureCancelledError, cf.CancelledError) as e:
                        yield job, lost(job, type(e).__name__)
                        continue
                    except TypeError as e:  # pickled, not plain data: refused by the client, never unpickled
                        yield job, self.handlers.fail(job, "not graded: the grading worker's answer is not plain "
                                                           f"data ({str(e)[:200]})")
                        continue
                    except Exception as e:  # noqa: BLE001 - the worker function returns its own failures
                        yield job, self.handlers.fail(job, f"internal error: {str(e)[:300]}")
                        continue
                    result = self.handlers.accept(job, data, "the grading worker")
                    result.address = self._ran_on(future) if result.refused else ""
                    if result.refused:
                        # a refusal is never the submission's outcome: the job goes to another worker.
                        # The scheduler may no longer name the worker (it left meanwhile): then the job
                        # is still sent again, a bounded number of times.
                        if result.address and result.address not in self.refusing:
                            self.refusing[result.address] = result.refused
                            self.warn(f"the Dask worker {result.address} grades nothing more in this run: "
                                      f"{result.refused[:300]}")
                        key = (job.assignment, job.student)
                        refusals[key] = refusals.get(key, 0) + 1
                        if result.address or refusals[key] <= MAX_UNNAMED_REFUSALS:
                            again.append(job)
                        else:
                            yield job, lost(job, "refused by workers the scheduler could not name")
                        continue
                    yield job, result
                if done or self._grading_workers():
                    alone_since = None
                    continue
                alone_since = alone_since or time.monotonic()
                if time.monotonic() - alone_since > NO_WORKERS_S:  # nobody left to grade: say so, stop
                    for future, job in list(inflight.items()):
                        future.cancel()
                        yield job, lost(job, "no worker left")
                    inflight.clear()
                    for job in [*again, *jobs]:
                        yield job, lost(job, "no worker left")
                    again.clear()
        finally:
            for future in inflight:
                future.cancel()
