"""autograder: the instructor's tool over nbgrader (release, grade, feedback, export),
with sandboxed execution and scores computed outside the student's process."""

import sys as _sys

# jsonschema, imported with nbformat by every grading process, loads ``rfc3987_syntax`` when it is
# installed (jupyter-events pulls it in) to check the "iri" string format, and that module builds a
# parser for the whole RFC 3987 grammar at import: 1.2 s in each process. No notebook schema uses the
# format, and jsonschema checks it only when that module can be imported.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

# -- old module names ------------------------------------------------------------------------------
# The autograder's modules live in layers (autograder/<layer>/<module>.py). A deployed course or hub
# config may still name a plugin by its old, flat name (``autograder.execute.SandboxedExecute``,
# ``autograder.exchange.PrivateSubmit``, ``autograder.late.PerDayPenalty``): those names import the
# module where the class lives now, and ``python -m autograder.plan`` / ``autograder.heldout`` still run.
# Code of this repository uses the new names only.
import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util

OLD_NAMES = {
    "autograder.execute": "autograder.pipeline.execute",
    "autograder.scoring": "autograder.pipeline.scoring",
    "autograder.sanitize": "autograder.pipeline.sanitize",
    "autograder.late": "autograder.pipeline.late",
    "autograder.policy": "autograder.config",
    "autograder.settings": "autograder.config",
    "autograder.plan": "autograder.authoring.plan",        # python -m autograder.plan COURSE AID
    "autograder.heldout": "autograder.authoring.heldout",  # python -m autograder.heldout build ...
}


class _OldName(_abc.MetaPathFinder, _abc.Loader):
    """Finds ``OLD_NAMES`` and hands back the module of the new name (the same module object)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in OLD_NAMES:
            return _util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return _importlib.import_module(OLD_NAMES[spec.name])

    def exec_module(self, module):
        pass

    def get_code(self, fullname):  # ``python -m <old name>`` (runpy) runs the new module's code
        spec = _util.find_spec(OLD_NAMES[fullname])
        return spec.loader.get_code(spec.name)


if not any(isinstance(f, _OldName) for f in _sys.meta_path):
    _sys.meta_path.append(_OldName())
