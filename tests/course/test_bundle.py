"""The student edition (``autograder bundle``): what it holds, and a leak check that formatting
cannot fool.

The leak check reads *every* file of the bundle, as a folder and as a zip (and any zip inside
them), as raw text, as the strings of any JSON document (a notebook's cell sources, checks.json)
and as the lines of those strings; it compares after normalising whitespace and quotes. It
proves that none of these is in the bundle:

- a line of any solution block (``### BEGIN SOLUTION`` .. ``### END SOLUTION`` of every source
  notebook, committed or in the working copy), except lines the source notebook also shows
  outside its solution blocks (public by the author's choice) and lines too short to mean
  anything (``return out``);
- one assignment's answer anywhere else: a line of assignment A's solution blocks may appear only
  in A's own folder, and only where A's notebook shows it outside its solution blocks (a hint) —
  never in another assignment's notebook (even as that notebook's given code) nor in helpers/;
- a line of any ``cases.py`` (the same rule; ``import`` lines excepted);
- an instructor file, by path (source_notebooks/, autograder/, course/, tests/, cases.py…)
  or by content (the same bytes under another name);
- a hidden input: the numbers of every hidden case drawn for several grading seeds.

A doctored bundle (a solution line re-indented, re-quoted, inside a notebook's JSON inside a
nested zip) must be caught: the checker is tested as well.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.authoring.bundle import NOTEBOOKS, build_files, bundle, student_dependencies
from autograder.course import Course, CourseError
from tests.support.course import REPO, run_cli, syllabus_ids

#: Lines of cases.py that are generic Python idioms, also written in helpers/ for their own use
#: (checked by hand: not a case, not a tolerance, not a mistake). Normalised like everything else.
GENERIC_LINES = {"withnp.errstate(invalid='ignore'):", "withnp.errstate(divide='ignore'):"}
#: Lines of a solution block that are generic Python/torch idioms and also appear, for their own
#: purpose, in another notebook's given code or in helpers/ (checked by hand: none of them is an
#: exercise's answer). Normalised like everything else.
GENERIC_SOLUTION_LINES = {
    # a challenge's reference training loop (05) uses the optimiser and schedule that 04, 08 and 11
    # give students in their own training cells: the set-up of a loop, not a design choice graded
    "optimizer=torch.optim.Adam(model.parameters(),lr=max_lr)",
    "schedule=torch.optim.lr_scheduler.OneCycleLR(",
    # the header of a training loop, in the challenges' reference fits (07, 10, 12) and in given
    # training cells of other notebooks: which loop it heads is the answer, not the header
    "forepochinrange(epochs):",
}
#: A solution or cases.py line shorter than this (normalised: no whitespace) is not evidence of a
#: leak: ``returnout``, ``else:``, ``x=x+1`` appear in any Python code.
MIN_CHARS = 24
INSTRUCTOR_DIRS = ("source_notebooks", "autograder", "course", "tests", "benchmarks", "deploy")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": "'", "\u201d": "'", '"': "'", "`": "'"})


def normalise(text: str) -> str:
    """Whitespace removed, every kind of quote made ``'``."""
    return re.sub(r"\s+", "", text.translate(_QUOTES))


# --------------------------------------------------------------------------- #
# What must not leak
# --------------------------------------------------------------------------- #


def _source_notebooks() -> list[tuple[str, str]]:
    """(name, JSON text) of every source notebook: the working copy's and the committed ones."""
    out = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted((REPO / "source_notebooks").glob("*/*.ipynb"))]
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", "HEAD", "source_notebooks"],
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if name.endswith(".ipynb"):
            text = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{name}"], capture_output=True,
                                  text=True, check=True).stdout
            out.append((f"HEAD:{name}", text))
    return out


def _split(nb) -> tuple[list[str], list[str]]:
    """(lines outside solution blocks, lines inside them) of a notebook's cells."""
    public, hidden = [], []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            else:
                (hidden if inside else public).append(line)
    return public, hidden


@functools.lru_cache(maxsize=None)
def published_text() -> str:
    """What the author publishes on purpose, normalised: every source notebook outside its
    solution blocks (markdown, set-up and demo code, exercise signatures and hints) and the
    mistake messages of every checks.json (written in cases.py to be shown to students).
    A secret line found here is not a leak of the bundle: the author wrote it for students."""
    parts = []
    for _, text in _source_notebooks():
        parts += _split(nbformat.reads(text, as_version=4))[0]
    for path in sorted((REPO / "source_notebooks").glob("*/checks.json")):
        parts += _messages(json.loads(path.read_text()))
    return "\n".join(normalise(p) for p in parts)


def _messages(obj) -> list[str]:
    """The ``message`` strings anywhere in a JSON value."""
    if isinstance(obj, list):
        return [m for v in obj for m in _messages(v)]
    if isinstance(obj, dict):
        own = [obj["message"]] if isinstance(obj.get("message"), str) else []
        return own + [m for v in obj.values() for m in _messages(v)]
    return []


@functools.lru_cache(maxsize=None)
def solution_lines() -> dict[str, str]:
    """{normalised line: where} for every meaningful line of every solution block."""
    secret: dict[str, str] = {}
    public = published_text()
    for where, text in _source_notebooks():
        for line in _split(nbformat.reads(text, as_version=4))[1]:
            n = normalise(line)
            if len(n) >= MIN_CHARS and n not in public and not n.startswith("#"):
                secret.setdefault(n, f"{where}: {line.strip()[:80]}")
    return secret


def _assignment_of(where: str) -> str:
    """The assignment a source notebook's name (``source_notebooks/<id>/...`` or ``HEAD:...``) belongs to."""
    return where.split("source_notebooks/", 1)[1].split("/", 1)[0]


@functools.lru_cache(maxsize=None)
def published_by() -> dict[str, str]:
    """{assignment: what its own release shows on purpose, normalised}: its source notebook outside
    the solution blocks and the mistake messages of its checks.json."""
    parts: dict[str, list[str]] = {}
    for where, text in _source_notebooks():
        parts.setdefault(_assignment_of(where), []).extend(_split(nbformat.reads(text, as_version=4))[0])
    for path in sorted((REPO / "source_notebooks").glob("*/checks.json")):
        parts.setdefault(path.parent.name, []).extend(_messages(json.loads(path.read_text())))
    return {aid: "\n".join(normalise(p) for p in lines) for aid, lines in parts.items()}


@functools.lru_cache(maxsize=None)
def solution_lines_by_assignment() -> dict[str, dict[str, tuple[str, bool]]]:
    """{assignment: {normalised line: (where, shown)}}: every meaningful line of its solution blocks;
    ``shown``: its own release shows the line on purpose (a hint). Such a line may appear in the
    bundle only in that assignment's own folder, and only when shown: never in another assignment's
    notebook (where it would hand out this one's answer, whatever that notebook's author meant),
    never in helpers/."""
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    public = published_by()
    for where, text in _source_notebooks():
        aid = _assignment_of(where)
        for line in _split(nbformat.reads(text, as_version=4))[1]:
            n = normalise(line)
            if len(n) >= MIN_CHARS and not n.startswith("#") and n not in GENERIC_SOLUTION_LINES:
                out.setdefault(aid, {}).setdefault(n, (f"{where}: {line.strip()[:80]}", n in public.get(aid, "")))
    return out


@functools.lru_cache(maxsize=None)
def cases_lines() -> dict[str, str]:
    """{normalised line: where} for every meaningful line of every cases.py (working copy and HEAD)."""
    texts = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted((REPO / "source_notebooks").glob("*/cases.py"))]
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "-r", "--name-only", "HEAD", "source_notebooks"],
                            capture_output=True, text=True, check=True).stdout.split()
    texts += [(f"HEAD:{n}", subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{n}"], capture_output=True,
                                           text=True, check=True).stdout) for n in listed if n.endswith("cases.py")]
    secret: dict[str, str] = {}
    public = published_text()
    for where, text in texts:
        for line in text.splitlines():
            n = normalise(line)
            if (len(n) >= MIN_CHARS and not re.match(r"^(from\S+)?import", n) and n not in public
                    and n not in GENERIC_LINES and not re.fullmatch(r"#[-=#*~]*", n)):  # a rule, not a case
                secret.setdefault(n, f"{where}: {line.strip()[:80]}")
    return secret


@functools.lru_cache(maxsize=None)
def instructor_digests() -> dict[str, str]:
    """{sha256: path} of every file in the instructor's folders (non-empty files), except those
    made to be shipped: checks.json (the visible checks, generated beside each source notebook and
    released as they are) and the student edition's templates."""
    out = {}
    for d in INSTRUCTOR_DIRS:
        for p in (REPO / d).rglob("*"):
            shipped = p.name == "checks.json" or "student_edition" in p.parts
            if (p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts and p.stat().st_size > 0
                    and not shipped):
                out[hashlib.sha256(p.read_bytes()).hexdigest()] = str(p.relative_to(REPO))
    return out


@functools.lru_cache(maxsize=None)
def hidden_inputs(seeds: tuple[int, ...] = (0, 1, 2026, 987654321)) -> dict[tuple, str]:
    """{numbers of a hidden input: where} for every hidden case of every assignment and seed
    (the informative ones: see ``_informative``)."""
    from autograder.authoring.reference import load_exercises
    from helpers.grading.contract import encode_inputs

    course = Course(REPO / "course")
    seed_file = course.root / ".grading_seed"
    if seed_file.is_file():
        seeds = (*seeds, int(seed_file.read_text().strip()))
    out: dict[tuple, str] = {}
    for aid in syllabus_ids():
        for name, ex in load_exercises(course.cases_file(aid)).items():
            for seed in seeds:
                for i, inputs in enumerate(ex.hidden_cases(seed)):
                    for arg, enc in encode_inputs(inputs):
                        for data in _number_lists(enc):
                            out.setdefault(tuple(data), f"{aid}/{name} hidden case {i} ({arg}), seed {seed}")
    return out


def _informative(data: list) -> bool:
    """At least 4 non-integral floats: a random real-valued draw, which no other case repeats by
    chance (integer labels, shapes and ``arange`` steps do repeat, and say nothing)."""
    return sum(isinstance(v, float) and v != int(v) for v in data if isinstance(v, (int, float))
               and v == v and abs(v) != float("inf")) >= 4


def _number_lists(obj) -> list[list]:
    """The ``data`` of every encoded array inside a JSON value (``helpers.grading.checking.encode``)
    that is informative, and any other list of such floats."""
    if isinstance(obj, list) and obj and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
        return [obj] if _informative(obj) else []
    if isinstance(obj, list):
        return [x for v in obj for x in _number_lists(v)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _number_lists(v)]
    return []


# --------------------------------------------------------------------------- #
# Reading everything a bundle holds
# --------------------------------------------------------------------------- #


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (k, *_strings(v))]
    return []


# a run of characters a line of code could be made of: no control character, no undecodable byte
_READABLE = re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]{%d,}" % MIN_CHARS)


def bundle_contents(files: dict[str, bytes]) -> tuple[dict[str, str], list[list], dict[str, str]]:
    """Everything readable in ``{path: bytes}``, zips opened (recursively).

    Returns ({path: normalised text: raw, plus JSON strings and their lines}, [number lists of
    every JSON file], {sha256: path})."""
    texts: dict[str, str] = {}
    numbers: list[list] = []
    digests: dict[str, str] = {}
    queue = list(files.items())
    while queue:
        path, data = queue.pop()
        digests[hashlib.sha256(data).hexdigest()] = path
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                queue += [(f"{path}!{i.filename}", zf.read(i)) for i in zf.infolist() if not i.is_dir()]
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # binary (an array, an image): only its readable runs can hold a line
            text = "\n".join(_READABLE.findall(data.decode("utf-8", errors="replace")))
        parts = [text]
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if doc is not None:
            parts += _strings(doc)
            numbers += _number_lists(doc)
        texts[path] = "\n".join(normalise(p) for p in parts)
    return texts, numbers, digests


def leaks(files: dict[str, bytes]) -> list[str]:
    """Every leak found in a bundle given as ``{path: bytes}``, as readable lines (empty: none)."""
    texts, numbers, digests = bundle_contents(files)
    found = []
    for path in files:
        parts = Path(path.split("!")[-1]).parts
        if set(parts) & {"source_notebooks", "autograder", "course", "tests", "cases.py", ".grading_seed",
                         "gradebook.db", "nbgrader_config.py"}:
            found.append(f"instructor path {path}")
    instructor = instructor_digests()
    found += [f"{path} has the bytes of {instructor[d]}" for d, path in digests.items() if d in instructor]
    flagged = set()
    for kind, secret in (("solution line", solution_lines()), ("cases.py line", cases_lines())):
        for line, where in secret.items():
            for path, text in texts.items():
                if line in text:
                    found.append(f"{kind} in {path}: {where}")
                    flagged.add((path, line))
    # one assignment's answer shown by another's notebook (or helpers/): the check above lets it
    # through, since that notebook's author published the line on purpose
    for aid, secret in solution_lines_by_assignment().items():
        own = f"/{NOTEBOOKS}/{aid}/"  # in the folder, or inside the zip (under its top folder)
        for line, (where, shown) in secret.items():
            for path, text in texts.items():
                inside_own = own in "/" + path.split("!")[-1]
                if line in text and (path, line) not in flagged and not (shown and inside_own):
                    found.append(f"solution line of {aid} in {path}: {where}")
    hidden = hidden_inputs()
    shipped = {tuple(n) for n in numbers}
    found += [f"hidden input in the bundle: {where}" for data, where in hidden.items() if data in shipped]
    return found


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The bundle of the repository's HEAD, as a folder and as a zip, through the real CLI."""
    tmp = tmp_path_factory.mktemp("bundle")
    folder, zpath = tmp / "student", tmp / "student.zip"
    # one commit for every build of this module (others may commit meanwhile)
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    r1 = run_cli("bundle", "--to", str(folder), "--rev", rev)
    r2 = run_cli("bundle", "--to", str(zpath), "--rev", rev)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return {"folder": folder, "zip": zpath, "files": files, "out": r1.stdout, "rev": rev}


@pytest.mark.slow
def test_the_bundle_holds_the_student_edition_of_every_syllabus_assignment(built):
    names = set(built["files"])
    committed = subprocess.run(["git", "-C", str(REPO), "show", f"{built['rev']}:course/syllabus.toml"],
                               capture_output=True, text=True, check=True).stdout
    import tomllib

    for a in tomllib.loads(committed)["assignment"]:
        assert {f"{NOTEBOOKS}/{a['id']}/{a['id']}.ipynb", f"{NOTEBOOKS}/{a['id']}/checks.json"} <= names
        assert f"{NOTEBOOKS}/{a['id']}/{a['id']}.ipynb" in built["files"]["README.md"].decode()
    for f in ("README.md", "run", "LICENSE", "pyproject.toml", "environment.yml", ".gitignore", "BUNDLE.json",
              "helpers/__init__.py", "helpers/grading/checking.py", "helpers/datasets/PROVENANCE.md",
              "helpers/datasets/mnist9k.npz"):
        assert f in names, f
    assert (built["folder"] / "run").stat().st_mode & 0o111
    assert not any("__pycache__" in n or n.endswith(".pyc") or ".ipynb_checkpoints" in n for n in names)
    manifest = json.loads(built["files"]["BUNDLE.json"])
    assert len(manifest["built_from"]) == 40
    assert all(hashlib.sha256(built["files"][p]).hexdigest() == d for p, d in manifest["files"].items())


@pytest.mark.slow
def test_no_solution_cases_instructor_file_or_hidden_input_in_the_folder_or_the_zip(built):
    found = leaks({**built["files"], "student.zip": built["zip"].read_bytes()})
    assert not found, "\n".join(found[:20])


@pytest.mark.slow
def test_the_leak_check_is_not_fooled_by_formatting(built):
    """A solution line re-indented and re-quoted inside a notebook's JSON inside a nested zip, and
    inside a binary file, a cases.py line, a hidden input's numbers and a copied instructor file are all found."""
    solution = next(iter(solution_lines().items()))
    case_line = next(iter(cases_lines().items()))
    hidden = next(iter(hidden_inputs().items()))
    # rebuild the solution line with other whitespace and quotes than the source's
    src_line = solution[1].split(": ", 1)[1]
    disguised = "\t  " + src_line.replace("'", '"').replace(" ", "  ") + "   "
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"x = 1\n{disguised}\n")])
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deep/nb.ipynb", nbformat.writes(nb))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("inner.zip", inner.getvalue())
    cases_src = case_line[1].split(": ", 1)[1]
    doctored = {
        "clean/README.md": b"nothing here",
        "notes/outer.zip": outer.getvalue(),
        "notes/x.py": ("# copied\n" + cases_src.replace('"', "'") + "\n").encode(),
        "notes/data.json": json.dumps({"x": {"data": list(hidden[0])}}).encode(),
        "notes/renamed.txt": (REPO / "autograder" / "authoring" / "bundle.py").read_bytes(),
        "notes/pixels.npy": bytes(range(256)) * 300 + disguised.encode() + b"\x00\xff" * 3000,
    }
    found = "\n".join(leaks(doctored))
    assert f"solution line in notes/outer.zip!inner.zip!deep/nb.ipynb: {solution[1]}" in found
    assert f"solution line in notes/pixels.npy: {solution[1]}" in found
    assert "cases.py line in notes/x.py" in found
    assert f"hidden input in the bundle: {hidden[1]}" in found
    assert "notes/renamed.txt has the bytes of autograder/authoring/bundle.py" in found
    assert leaks({"clean/README.md": b"nothing here"}) == []


@pytest.mark.slow
def test_the_zip_is_the_folder_and_the_same_every_time(built, tmp_path):
    with zipfile.ZipFile(built["zip"]) as zf:
        zipped = {i.filename.split("/", 1)[1]: zf.read(i) for i in zf.infolist()}
        modes = {i.filename.split("/", 1)[1]: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert zipped == built["files"] and modes["run"] == 0o755
    again = tmp_path / "student.zip"  # same name, so the same top folder
    assert run_cli("bundle", "--to", str(again), "--rev", built["rev"]).returncode == 0
    assert again.read_bytes() == built["zip"].read_bytes()


@pytest.mark.slow
def test_student_dependencies_cover_every_import_of_the_notebooks_and_helpers(built):
    """Each module the bundle's code imports is the standard library's, ``helpers``, or installed by the
    bundle's pyproject.toml (whose package list is environment.yml's)."""
    import tomllib

    from IPython.core.inputtransformer2 import TransformerManager  # magics as Python, like the kernel

    deps = {re.split(r"[<>=!~ ]", d)[0] for d in tomllib.loads(built["files"]["pyproject.toml"].decode())
            ["project"]["dependencies"]}
    assert deps == {re.split(r"[<>=!~ ]", d)[0] for d in
                    re.findall(r"^      - ([^-].*)$", built["files"]["environment.yml"].decode(), re.M)}
    closure = _closure(deps | {"ipykernel"})  # the kernel comes with jupyterlab
    modules = importlib.metadata.packages_distributions()
    provided = {m for m, dists in modules.items() if any(_canon(d) in closure for d in dists)} | {"helpers"}
    sources = [(p, d.decode()) for p, d in built["files"].items() if p.endswith(".py")]
    for p, d in built["files"].items():
        if p.endswith(".ipynb"):
            nb = nbformat.reads(d.decode(), as_version=4)
            sources += [(p, TransformerManager().transform_cell(c.source)) for c in nb.cells if c.cell_type == "code"]
    missing = set()
    for path, text in sources:
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in provided:
                    missing.add(f"{top} ({path})")
    assert not missing, sorted(missing)
    assert not {"nbgrader", "copydetect"} & deps


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` install, with their (non-extra) requirements, as this venv has them."""
    todo, seen = [_canon(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_canon(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return seen


@pytest.mark.slow
def test_the_run_script_and_readme_are_the_students(built):
    run = built["files"]["run"].decode()
    assert subprocess.run(["bash", "-n", str(built["folder"] / "run")]).returncode == 0
    assert "torch==" in run and run.index('pip install -q "torch==') < run.index("pip install -q -e .")
    assert f"--ServerApp.root_dir={NOTEBOOKS}" in run and "pytest" not in run and "autograder" not in run
    readme = built["files"]["README.md"].decode()
    assert "./run lab" in readme and "Submitting" in readme and "PROVENANCE.md" in readme
    assert "{{" not in readme + run + built["files"]["LICENSE"].decode()
    r = subprocess.run([str(built["folder"] / "run"), "grade"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage: ./run lab" in r.stderr


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def _mini_repo(tmp_path: Path, syllabus_ids_: list[str], released: list[str]) -> Course:
    """A small committed course: the real helpers and course config, a syllabus of ``syllabus_ids_``,
    and release folders for ``released``."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "helpers", repo / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "course").mkdir(parents=True)
    shutil.copy(REPO / "course" / "nbgrader_config.py", repo / "course")
    shutil.copy(REPO / "pyproject.toml", repo)
    (repo / "course" / "syllabus.toml").write_text("".join(
        f'[[assignment]]\nid = "{a}"\ntitle = "Title of {a}"\npoints = 1\n\n' for a in syllabus_ids_))
    for a in released:
        d = repo / "release" / a
        d.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), d / f"{a}.ipynb")
        (d / "checks.json").write_text("{}\n")
    (repo / "source_notebooks" / released[0]).mkdir(parents=True)
    (repo / "source_notebooks" / released[0] / "cases.py").write_text("SECRET = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "course")
    return Course(repo / "course")


def test_the_bundle_takes_whatever_the_committed_syllabus_lists(tmp_path):
    course = _mini_repo(tmp_path, ["00_a", "11_new"], ["00_a", "11_new"])
    files, warnings = build_files(course)
    names = {f.path for f in files}
    assert {f"{NOTEBOOKS}/11_new/11_new.ipynb", f"{NOTEBOOKS}/00_a/checks.json"} <= names and not warnings
    assert not any("cases.py" in n or n.startswith(("source_notebooks", "course")) for n in names)
    assert "Title of 11_new" in next(f for f in files if f.path == "README.md").data.decode()
    # an uncommitted edit is not bundled, and the instructor is told
    (course.root.parent / "helpers" / "grading" / "checking.py").write_text("# edited\n")
    files, warnings = build_files(course)
    assert b"# edited" not in next(f for f in files if f.path == "helpers/grading/checking.py").data
    assert any("helpers/grading/checking.py has uncommitted changes" in w for w in warnings)


def test_an_assignment_without_a_committed_release_is_one_clear_error(tmp_path):
    course = _mini_repo(tmp_path, ["00_a", "12_later"], ["00_a"])
    with pytest.raises(CourseError, match=r"release/12_later/ .* lacks 12_later.ipynb .*autograder release 12_later"):
        build_files(course)
    where, _, _ = bundle(_mini_repo(tmp_path / "ok", ["00_a"], ["00_a"]), tmp_path / "out")
    with pytest.raises(CourseError, match="not an empty folder"):
        (where / ".git").mkdir()
        bundle(Course(tmp_path / "ok" / "repo" / "course"), where)


def test_student_dependencies_drop_only_the_instructors_packages():
    deps = student_dependencies({"project": {"dependencies": ["torch==2.13.0", "nbgrader==0.9.6", "numpy>=1",
                                                              "copydetect>=0.5", "nbformat>=5"]}})
    assert deps == ["torch==2.13.0", "numpy>=1"]


@pytest.mark.slow
def test_one_assignments_answer_in_another_notebook_or_in_helpers_is_a_leak():
    """A solution line of A is a leak in B's notebook even when B's author wrote it as given code
    (11 once gave 08's attention as a set-up cell), and in helpers/; A's own hint is not."""
    by_aid = solution_lines_by_assignment()
    aid, lines = next((a, ls) for a, ls in sorted(by_aid.items()) if any(not shown for _, shown in ls.values()))
    line, (where, _) = next((n, v) for n, v in lines.items() if not v[1])
    other = next(a for a in sorted(by_aid) if a != aid)
    src = where.split(": ", 1)[1]
    given = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"# given code\n{src}\n")])
    doctored = {f"{NOTEBOOKS}/{other}/{other}.ipynb": nbformat.writes(given).encode(),
                "helpers/extra.py": f"def f():\n    {src}\n".encode()}
    found = "\n".join(leaks(doctored))
    assert f"solution line of {aid} in {NOTEBOOKS}/{other}/{other}.ipynb" in found or \
        f"solution line in {NOTEBOOKS}/{other}/{other}.ipynb" in found
    assert "helpers/extra.py" in found
    # the cross-notebook rule itself, where the global rule is blind (the other notebook publishes it)
    hints = [(a, n, w) for a, ls in by_aid.items() for n, (w, shown) in ls.items() if shown]
    if hints:
        hint_aid, _, hint_where = hints[0]
        hint_src = hint_where.split(": ", 1)[1]
        nb = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(hint_src)])).encode()
        assert not [f for f in leaks({f"{NOTEBOOKS}/{hint_aid}/{hint_aid}.ipynb": nb}) if hint_aid in f]
        elsewhere = next(a for a in sorted(by_aid) if a != hint_aid)
        assert [f for f in leaks({f"{NOTEBOOKS}/{elsewhere}/{elsewhere}.ipynb": nb}) if hint_aid in f]
