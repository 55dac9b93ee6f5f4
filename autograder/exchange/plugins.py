"""nbgrader's exchange classes with private permissions: what students' servers run.

Selected through ``ExchangeFactory`` (``FACTORY``) in the students', the instructor's and the
grading tool's nbgrader configuration. This module imports nbgrader and the standard library only:
a student's server needs nothing else of the autograder (a test reads the imports). The layout
and modes of the exchange, and why they differ from stock nbgrader's, are in
``autograder.exchange.instructor``.
"""
from __future__ import annotations

import os
import shutil
import stat

from nbgrader.exchange.default.release_assignment import ExchangeReleaseAssignment
from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.exchange.default.submit import ExchangeSubmit

ROOT_MODE = 0o1777
COURSE_MODE = 0o755
INBOUND_MODE = stat.S_ISGID | stat.S_ISVTX | 0o733
SUBMISSION_DIR_MODE = 0o750
SUBMISSION_FILE_MODE = 0o640
FEEDBACK_DIR_MODE = 0o711
FEEDBACK_FILE_MODE = 0o644



# --------------------------------------------------------------------------- #
# nbgrader's exchange classes with private permissions (run by students and the instructor).
# --------------------------------------------------------------------------- #


def _chmod_if_needed(path: str, mode: int, log) -> None:
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(path, mode)
        except PermissionError:
            log.warning("cannot set the permissions of %s to %o (owned by uid %d)", path, mode, st.st_uid)


class PrivateReleaseAssignment(ExchangeReleaseAssignment):
    """``nbgrader release_assignment``, leaving the exchange root sticky and the inbound private."""

    def ensure_root(self) -> None:
        if not os.path.isdir(self.root):
            try:
                os.makedirs(self.root)
            except PermissionError:
                self.fail(f"Could not create {self.root}, permission denied.")
        _chmod_if_needed(self.root, ROOT_MODE, self.log)
        if stat.S_IMODE(os.stat(self.root).st_mode) != ROOT_MODE:
            self.fail(f"The exchange {self.root} must have mode {ROOT_MODE:o} (sticky, writable by all); "
                      f"ask its owner to run: chmod {ROOT_MODE:o} {self.root}")

    def init_dest(self) -> None:
        super().init_dest()
        for path in (self.course_path, self.outbound_path):
            _chmod_if_needed(path, COURSE_MODE, self.log)
        _chmod_if_needed(self.inbound_path, INBOUND_MODE, self.log)


class PrivateSubmit(ExchangeSubmit):
    """``nbgrader submit``, after which the submission is readable by its owner and the
    instructors' group only (nbgrader leaves the folder 0777 and its files 0644)."""

    def do_copy(self, src, dest, log=None) -> None:
        """nbgrader's copy (same ignore patterns and size limits), except that the submission
        folder keeps the setgid bit it inherits from the inbound: shutil.copytree would clear it
        (copystat), and timestamp.txt and submission_secret.txt, written next, would then be in
        the student's group, unreadable to the instructor. A student cannot set it back (not
        being in the instructors' group), so it must never be cleared."""
        if self.coursedir.groupshared or os.path.dirname(os.path.abspath(dest)) != os.path.abspath(self.inbound_path):
            return super().do_copy(src, dest, log)
        from nbgrader.utils import ignore_patterns

        size, limit = self.get_size(src), 1000 * self.coursedir.max_dir_size
        if size > limit:
            self.log.error("Directory size is too big")
            raise RuntimeError(f"Directory size is too big. Size is {size}, maximum size is {limit}")
        ignore = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                 max_file_size=self.coursedir.max_file_size, log=self.log)
        os.mkdir(dest, 0o700)  # group and setgid from the inbound
        names = os.listdir(src)
        skipped = ignore(src, names)
        for name in names:
            if name in skipped:
                continue
            s, d = os.path.join(src, name), os.path.join(dest, name)
            if os.path.isdir(s):
                shutil.copytree(s, d, ignore=ignore)
            else:
                shutil.copy2(s, d)

    def copy_files(self) -> None:
        super().copy_files()
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, SUBMISSION_FILE_MODE)
            os.chmod(dirpath, SUBMISSION_DIR_MODE)
        if os.stat(dest).st_gid != os.stat(self.inbound_path).st_gid:
            self.log.warning("the submission %s is not in the instructors' group: is the inbound setgid?", dest)


class PrivateReleaseFeedback(ExchangeReleaseFeedback):
    """``nbgrader release_feedback``, with files every student can read by (secret) name only."""

    def copy_files(self) -> None:
        super().copy_files()
        _chmod_if_needed(self.dest_path, FEEDBACK_DIR_MODE, self.log)
        for entry in os.scandir(self.dest_path):
            if entry.name.endswith(".html") and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_uid == os.geteuid():
                _chmod_if_needed(entry.path, FEEDBACK_FILE_MODE, self.log)


#: ``c.ExchangeFactory`` settings selecting the classes above (students' and instructors' configs).
FACTORY = {
    "release_assignment": "autograder.exchange.plugins.PrivateReleaseAssignment",
    "submit": "autograder.exchange.plugins.PrivateSubmit",
    "release_feedback": "autograder.exchange.plugins.PrivateReleaseFeedback",
}
