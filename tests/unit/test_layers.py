"""The autograder's folders are its architecture: these rules read every import (an ``ast`` walk) and
fail when one is broken. ``check_layers`` is also run on a broken copy to show that it fails.

Layers (data flows one way: intake -> authoring/plan -> run -> store -> results):
  course.py, config.py, errors.py, files.py   shared by all (they import no layer)
  store/       the gradebook and the outcome files: the only writer of both
  authoring/   exercises, challenges, reference, plans, held-out data, release, scaffold, the bundle
  sandbox/     bubblewrap, the kernel, the watchdog, processes: no course state
  pipeline/    the nbgrader steps the course config names (execute, scoring, sanitize, late)
  intake/      collecting and reading submissions, the roster
  lms/         Moodle and Canvas formats, both directions
  exchange/    the students' exchange plugins and the instructor's collect / return
  run/         jobs and results as data, the local and the Dask pools: no grading, plans or course
  grading/     batches, the canary, the worker: the one layer that drives the others
  results/     export, report, similarity
  ondemand/    grading on submit: the hub's service, attempts, the student's page (drives grading and
               the exchange like the CLI; nothing imports it)
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("store", "authoring", "sandbox", "pipeline", "intake", "lms", "exchange", "run", "grading", "results",
          "ondemand")
SHARED = ("course", "config", "errors", "files")

#: layer -> the autograder layers it must never import
FORBIDDEN = {
    "intake": {"grading", "run", "pipeline", "results", "lms", "exchange", "ondemand"},
    "lms": {"grading", "run", "pipeline", "exchange", "ondemand"},
    "exchange": {"grading", "run", "pipeline", "results", "lms", "ondemand"},
    "results": {"grading", "run", "pipeline", "intake", "lms", "exchange", "ondemand"},
    "authoring": {"grading", "run", "pipeline", "intake", "lms", "exchange", "results", "ondemand"},
    "pipeline": {"grading", "run", "intake", "lms", "exchange", "results", "ondemand"},
    "run": set(LAYERS) - {"run"} | {"course"},
    "sandbox": set(LAYERS) - {"sandbox"} | {"course"},
    "store": {"grading", "pipeline", "intake", "lms", "exchange", "results", "sandbox", "authoring", "ondemand"},
    "grading": {"ondemand"},
    # it grades through `autograder grade` in a child process: never the pools, the sandbox or the steps
    "ondemand": {"run", "sandbox", "pipeline"},
}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = path.parent
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg
                for _ in range(node.level - 1):
                    base = base.parent
                mod = ".".join([*base.relative_to(path.parents[len(path.relative_to(REPO).parts) - 1]).parts, mod]).strip(".")
            out.append((mod, [a.name for a in node.names], node.lineno))
    return out


def _layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "autograder" or len(parts) < 2:
        return None
    return parts[1]


def _target_layers(mod: str, names: list[str]) -> set[str]:
    """The autograder layers an import reaches (``from autograder import grading`` reaches grading)."""
    if mod == "autograder":
        return {n for n in names if n in LAYERS or n in SHARED}
    layer = _layer_of(mod)
    return {layer} if layer else set()


def check_layers(root: Path) -> list[str]:
    """Every broken rule in the autograder and helpers packages under ``root``, as messages."""
    problems = []
    pkg = root / "autograder"
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(root)
        here = rel.parts[1] if len(rel.parts) > 2 else rel.stem
        for mod, names, line in _imports(path):
            where = f"{rel}:{line}"
            for target in _target_layers(mod, names):
                if target in FORBIDDEN.get(here, ()):
                    problems.append(f"{where}: {here}/ imports {target} ({mod})")
                if here in SHARED and target in LAYERS:
                    problems.append(f"{where}: {here}.py is shared by every layer and imports the {target} layer")
            if mod.startswith("autograder") or mod.startswith("helpers"):
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                if private:
                    problems.append(f"{where}: uses another module's private name(s) {private} from {mod}")
        if rel.as_posix() == "autograder/exchange/plugins.py":
            for mod, names, line in _imports(path):
                if mod.startswith("autograder") or mod.startswith("helpers"):
                    problems.append(f"{rel}:{line}: the exchange plugins run in students' servers and import {mod}")
        problems += _private_attributes(path, rel)
        if here != "store":
            problems += _opens_gradebook(path, rel)
    for path in sorted((root / "helpers").rglob("*.py")):
        for mod, _, line in _imports(path):
            if mod.split(".")[0] == "autograder":
                problems.append(f"{path.relative_to(root)}:{line}: helpers imports the autograder ({mod})")
    return problems


def _opens_gradebook(path: Path, rel: Path) -> list[str]:
    """Only store/ opens nbgrader's Gradebook (``Gradebook(...)``) or writes an outcome file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name == "Gradebook":
                out.append(f"{rel}:{node.lineno}: opens nbgrader's Gradebook outside store/")
    return out


def _private_attributes(path: Path, rel: Path) -> list[str]:
    """``module._name`` where ``module`` is an autograder module imported by this file."""
    tree = ast.parse(path.read_text(), str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("autograder"):
            modules |= {a.asname or a.name for a in node.names if (node.module == "autograder" or a.name.islower())}
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name.startswith("autograder")}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            out.append(f"{rel}:{node.lineno}: uses {node.value.id}.{node.attr}, a private name of another module")
    return out


def test_the_autograder_keeps_its_layers():
    problems = check_layers(REPO)
    assert not problems, "\n".join(problems)


def test_every_module_lives_in_a_layer():
    top = {p.stem for p in (REPO / "autograder").glob("*.py")}
    assert top <= {"__init__", "__main__", "cli", *SHARED}, f"modules outside the layers: {sorted(top - set(SHARED))}"
    assert {p.name for p in (REPO / "autograder").iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYERS)


def test_a_broken_rule_is_caught(tmp_path):
    """The rules are not vacuous: a results module that starts grading, a sandbox that reads the
    course, an exchange plugin that imports the autograder and a private name each fail."""
    shutil.copytree(REPO / "autograder", tmp_path / "autograder", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "helpers", tmp_path / "helpers", ignore=shutil.ignore_patterns("__pycache__", "datasets"))
    assert check_layers(tmp_path) == []
    (tmp_path / "autograder" / "results" / "bad.py").write_text("from autograder.grading import batch\n")
    (tmp_path / "autograder" / "sandbox" / "bad.py").write_text("from autograder.course import Course\n")
    with open(tmp_path / "autograder" / "exchange" / "plugins.py", "a") as f:
        f.write("\nfrom autograder.store import outcomes\n")
    (tmp_path / "autograder" / "intake" / "bad.py").write_text(
        "from autograder.store import outcomes\noutcomes._write(None, None)\n")
    (tmp_path / "helpers" / "bad.py").write_text("import autograder.course\n")
    (tmp_path / "autograder" / "results" / "worse.py").write_text(
        "from nbgrader.api import Gradebook\nwith Gradebook('sqlite://') as gb:\n    pass\n")
    found = "\n".join(check_layers(tmp_path))
    for expected in ("results/ imports grading", "sandbox/ imports course", "plugins run in students' servers",
                     "outcomes._write", "helpers imports the autograder", "worse.py:2: opens nbgrader's Gradebook"):
        assert expected in found, (expected, found)


def test_old_flat_names_still_resolve_and_the_repository_uses_the_new_ones():
    """A deployed course or hub config may name a plugin by its old flat name: it resolves to the class
    where it lives now (the same object), and ``python -m autograder.plan`` still runs; nothing of the
    repository itself (code, the course config, the hub's configs) uses an old name."""
    import importlib
    import subprocess
    import sys

    import autograder

    for old, new in autograder.OLD_NAMES.items():
        assert importlib.import_module(old) is importlib.import_module(new)
    from autograder.exchange import PrivateSubmit
    from autograder.exchange.plugins import PrivateSubmit as Now

    assert PrivateSubmit is Now
    done = subprocess.run([sys.executable, "-m", "autograder.plan", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "assignment" in done.stdout, done.stderr
    places = [*(REPO / "autograder").rglob("*.py"), *(REPO / "helpers").rglob("*.py"), *(REPO / "deploy").rglob("*.py"),
              REPO / "course" / "nbgrader_config.py"]
    old_names = [o for o in autograder.OLD_NAMES] + ["autograder.exchange.Private"]
    for path in places:
        if path.name == "__init__.py" and path.parent.name in ("autograder", "exchange"):
            continue  # where the old names are resolved
        text = path.read_text()
        for old in old_names:
            assert f"{old}." not in text.replace(f"{old}.py", "") and f"import {old}\n" not in text, (path, old)
