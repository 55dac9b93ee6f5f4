"""The limits the README states are the ones the grader applies (one source of truth: the code)."""
from __future__ import annotations

import re

from autograder import collect, grading, scoring
from autograder.execute import SandboxedExecute
from autograder.sandbox import BoundedKernelClient, Limits
from conftest import REPO
from helpers import checking

README = (REPO / "README.md").read_text()
CONFIG = (REPO / "course" / "nbgrader_config.py").read_text()


def _config_value(name: str) -> int:
    return int(re.search(rf"^c\.{re.escape(name)} = (\d+)", CONFIG, re.M).group(1))


def test_every_limit_in_the_readme_is_the_code_default():
    lim = Limits()
    text = " ".join(README.split())  # line breaks in the README are spaces
    assert f"({lim.total_memory_mb} MB resident" in text
    assert f"{lim.memory_mb // 1024} GB" in text and f"processes ({lim.processes})" in text
    assert f"file size ({lim.file_size_mb} MB)" in text and f"CPU time ({lim.cpu_seconds} s)" in text
    assert f"open files ({lim.open_files})" in text
    assert f"({lim.disk_mb} MB tmpfs each)" in text
    assert f"{lim.kernel_dir_files} files / {lim.kernel_dir_mb} MB" in text
    assert f"per cell ({_config_value('Execute.timeout')} s)" in text
    assert f"per notebook ({_config_value('SandboxedExecute.notebook_timeout')} s)" in text
    assert f"({SandboxedExecute.max_output_bytes.default_value // 1_000_000} MB: streams" in text
    assert f"any single kernel message ({BoundedKernelClient.max_message_bytes.default_value // 2**20} MB)" in text

    assert f"({scoring.MAX_OUTPUT_BYTES // 1_000_000} MB per exercise, nesting depth {checking.MAX_DEPTH}" in text
    assert f"{checking.MAX_ELEMENTS // 1_000_000} million numbers" in text
    assert f"feedback rendering ({grading.FEEDBACK_SECONDS} s)" in text
    assert f"at most {collect.MAX_NOTEBOOK_MB} MB per file" in text and f"{collect.MAX_ZIP_MB} MB in all" in text
