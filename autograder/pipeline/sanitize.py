"""What a student wrote is data, never code, when an instructor or a student opens it.

Student notebooks may hold HTML and JavaScript in markdown cells and in outputs. The
autograded notebook (opened by instructors in formgrader, inside their own Jupyter
session) and the feedback (opened by students) therefore go through:

- ``StudentContent``: nbconvert's ``SanitizeHTML`` (bleach: HTML in markdown and raw
  cells escaped, ``text/html``/``text/markdown`` outputs cleaned, every other rich
  output — JavaScript, SVG, widget views — removed), plus markdown images that point
  anywhere but inline data turned into text (an image is a request), and the
  notebook's widget state dropped (it makes the page load a widget manager).
- ``FeedbackOutputs`` (feedback only): the student's own cells keep their source but
  lose their outputs, so that nothing computed from hidden inputs reaches the
  student; graded test cells keep the trusted verdict the scorer wrote there.
- ``harden_feedback_html``: a Content-Security-Policy in the page itself, so that even
  markup the sanitiser missed can neither run a script nor make a request.
"""
from __future__ import annotations

import re
from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from nbconvert.preprocessors.sanitize import SanitizeHTML
from traitlets import Bool

#: Markdown images, inline ``![alt](url "title")`` and by reference ``![alt][ref]``.
_INLINE_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
_REF_IMAGE = re.compile(r"!\[([^\]]*)\]\[[^\]]*\]")
_SAFE_URL = ("data:image/", "attachment:")

FEEDBACK_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
                "base-uri 'none'; form-action 'none'; frame-src 'none'; object-src 'none'")


def neutralise_images(markdown: str) -> str:
    """Markdown images that would be fetched from somewhere become plain text."""
    def inline(m: re.Match) -> str:
        return m.group(0) if m.group(2).startswith(_SAFE_URL) else f"[image: {m.group(1)}]"

    return _REF_IMAGE.sub(lambda m: f"[image: {m.group(1)}]", _INLINE_IMAGE.sub(inline, markdown))


class StudentContent(SanitizeHTML):
    """SanitizeHTML, plus no remote images and no widget state (see the module docstring)."""

    enabled = Bool(True, help="nbconvert's preprocessors are off unless enabled: this one always runs.").tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.cell_type in ("markdown", "raw"):
            cell.source = neutralise_images(cell.source)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                data = out.get("data")
                if data and "text/markdown" in data:
                    data["text/markdown"] = neutralise_images(data["text/markdown"])
        return cell, resources


class FeedbackOutputs(Preprocessor):
    """Feedback shows the student's source and the trusted verdicts, not the cells' outputs."""

    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell.outputs = []
            cell.execution_count = None
        return cell, resources


def harden_feedback_html(path: Path) -> None:
    """Put the Content-Security-Policy first in the page's head (no script, no request)."""
    if not path.is_file():
        return
    html = path.read_text(encoding="utf-8", errors="replace")
    meta = f'<meta http-equiv="Content-Security-Policy" content="{FEEDBACK_CSP}">'
    if meta in html:
        return
    match = re.search(r"<head[^>]*>", html, flags=re.IGNORECASE)
    html = html[:match.end()] + meta + html[match.end():] if match else meta + html
    path.write_text(html, encoding="utf-8")
