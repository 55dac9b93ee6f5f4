"""The project's facts agree wherever they are written down."""
from __future__ import annotations

import re
import tomllib

import yaml

from tests.support.course import REPO, syllabus_ids


def _pyproject_packages() -> list[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = [p for p in pip if p != "-e ."]
    assert sorted(listed) == sorted(_pyproject_packages())
    assert "-e ." in pip
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    first = [l.split("#")[0].strip() for l in blocks[0].splitlines() if l.split("#")[0].strip()]
    assert first == ["./run lab", "./run test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^\./run test\b", ci, re.M)


def test_torch_is_installed_before_the_rest():
    script = (REPO / "run").read_text()
    assert script.index('"torch==2.13.0"') < script.index('-e ".[dev]"')
    assert "torch==2.13.0" in _pyproject_packages()


def test_readme_lists_every_assignment_of_the_syllabus():
    readme = (REPO / "README.md").read_text()
    for aid in syllabus_ids():
        assert f"`{aid}`" in readme, f"README's notebook table lacks {aid}"


def test_runtime_state_is_git_ignored():
    ignored = (REPO / ".gitignore").read_text().split()
    for path in ("course/gradebook.db", "course/submitted/", "course/autograded/", "course/feedback/",
                 "course/outcomes/", "course/exports/", ".venv/"):
        assert path in ignored
