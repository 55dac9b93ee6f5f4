"""A task's replaced package files (``Task.sandbox_files``): what the sandbox sees instead of the
package's own (15's withheld labels), and what is refused."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from autograder.config import SandboxPolicy
from autograder.sandbox import kernel as sandbox

PACKAGE = Path(helpers.__file__).resolve().parent


@pytest.mark.parametrize("rel", ["../README.md", "datasets", "no/such/file.npz", "/etc/passwd"])
def test_a_path_outside_the_package_or_not_a_file_is_refused(tmp_path, rel):
    with pytest.raises(ValueError, match="not a file of the helpers package"):
        sandbox.write_overlays(tmp_path, {rel: b"x"})


@pytest.mark.skipif(sandbox.bwrap_path() is None, reason="bubblewrap is not installed")
def test_the_sandbox_reads_the_replacement_and_the_host_file_is_untouched(tmp_path):
    target = PACKAGE / "datasets" / "mnist9k.npz"
    before = target.read_bytes()
    pairs = sandbox.write_overlays(tmp_path, {"datasets/mnist9k.npz": b"withheld"})
    uid = sandbox.new_kernel_uid()
    sandbox.prepare_workdir(tmp_path, [], uid)
    cmd = sandbox.sandbox_command(tmp_path, SandboxPolicy(), sandbox.kernel_env(tmp_path), uid, overlays=pairs)
    code = (f"import pathlib; p = pathlib.Path({str(target)!r}); print(p.read_bytes()[:20]);"
            "p.write_bytes(b'changed')")
    out = subprocess.run([*cmd, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "b'withheld'" in out.stdout, out.stderr
    assert "Read-only file system" in out.stderr or "Permission denied" in out.stderr
    assert target.read_bytes() == before
