"""The limits the README states are the ones the grader applies (one source of truth: SandboxPolicy)."""
from __future__ import annotations

import re

from autograder import config as policy
from autograder.config import SandboxPolicy
from tests.support.course import REPO

README = (REPO / "README.md").read_text()
CONFIG = (REPO / "course" / "nbgrader_config.py").read_text()


def test_the_readme_table_is_generated_from_the_policy():
    assert policy.readme_block() in README, "run `python -m autograder.config --readme` and commit README.md"


def test_every_limit_is_documented_and_the_course_uses_the_defaults_it_shows():
    traits = SandboxPolicy.class_traits(config=True)
    assert len(traits) >= 15 and all(t.help for t in traits.values())
    for name, value in re.findall(r"^c\.SandboxPolicy\.(\w+) = (\d+)", CONFIG, re.M):
        assert name in traits, f"nbgrader_config.py sets an unknown limit {name}"
        assert int(value) == traits[name].default_value, f"the README shows the default of {name}"


def test_the_policy_reaches_the_sandbox_and_the_execute_step(tmp_path):
    from traitlets.config import Config

    from autograder.sandbox import kernel as sandbox
    from autograder.pipeline.execute import SandboxedExecute

    config = Config()
    config.SandboxPolicy.memory_mb = 1234
    config.SandboxPolicy.cell_timeout = 7
    lim = SandboxPolicy(config=config)
    assert lim.memory_mb == 1234 and lim.processes == policy.default("processes")
    (tmp_path / "work").mkdir()
    sandbox.prepare_workdir(tmp_path, ["ex"], 12345)
    if sandbox.bwrap_path():
        cmd = sandbox.sandbox_command(tmp_path, lim, {}, 12345)
        assert f"--as={1234 * 2**20}" in cmd
    ex = SandboxedExecute(config=config)
    assert SandboxPolicy(parent=ex).cell_timeout == 7
