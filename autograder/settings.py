"""Grading settings, configured like the rest of nbgrader (``c.GradingSettings.x``).

The limits live in ``autograder.policy.SandboxPolicy`` (``c.SandboxPolicy.x``)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from traitlets import Bool, Integer, Unicode
from traitlets.config import Configurable

from autograder.course import Course


class GradingSettings(Configurable):
    """The run's seed and the explicit unsafe switch."""

    seed = Integer(None, allow_none=True,
                   help="Seed of the hidden cases. Default: the course's recorded seed "
                        "(course/.grading_seed, created on first use).").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="Run kernels without bubblewrap (unsafe).").tag(config=True)
    cluster = Unicode("", help="Address of a Dask scheduler (tls://host:8786, or a scheduler file) that grades "
                               "the submissions; empty: a local process pool (`autograder grade --cluster`).").tag(config=True)
    cluster_certs = Unicode("", help="Folder of the cluster's certificates (`autograder cluster-certs DIR`): its "
                                     "ca.pem, client.pem and client-key.pem authenticate this process to a tls:// "
                                     "scheduler; empty: Dask's own distributed.comm.tls settings.").tag(config=True)
    insecure_cluster = Bool(False, help="Accept a cluster address without TLS (tcp://): anyone who reaches the "
                                        "scheduler can join it (`autograder grade --insecure-cluster`).").tag(config=True)

    def resolved_seed(self, course: Course) -> int:
        """The explicit seed, else the course's recorded one (created once, then reused)."""
        if self.seed is not None:
            return int(self.seed)
        return course_seed(course)


def course_seed(course: Course) -> int:
    """The course's recorded seed, created on first use (atomically: concurrent first runs agree)."""
    path = course.root / ".grading_seed"
    if not path.exists():
        tmp = path.with_name(f".grading_seed.{os.getpid()}")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:  # secret: the grader's only
            f.write(str(secrets.randbelow(2**31)))
        try:
            os.link(tmp, path)  # fails if another run created it first: then theirs is used
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return int(path.read_text().strip())


def course_from_config(config) -> Course:
    return Course(Path(config.CourseDirectory.root))
