"""autograder: the instructor's tool over nbgrader (release, grade, feedback, export),
with sandboxed execution and scores computed outside the student's process."""

import sys as _sys

# jsonschema, imported with nbformat by every grading process, loads ``rfc3987_syntax`` when it is
# installed (jupyter-events pulls it in) to check the "iri" string format, and that module builds a
# parser for the whole RFC 3987 grammar at import: 1.2 s in each process. No notebook schema uses the
# format, and jsonschema checks it only when that module can be imported.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
