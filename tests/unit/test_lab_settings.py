"""`./run lab` (ours and the student edition's) opens JupyterLab without asking to fetch Jupyter's
news or check for updates: both would reach the internet, and the course runs offline (issue 26).

The run scripts write JupyterLab's ``overrides.json`` (new defaults for this environment) into the
virtual environment; this test reads the JSON they write and has JupyterLab's own settings code
(jupyterlab_server) apply it to the installed schema, so a renamed setting is caught."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupyterlab
import pytest
from jupyterlab_server.settings_utils import get_settings

from tests.support.course import REPO

SCRIPTS = [REPO / "run", REPO / "autograder" / "authoring" / "student_edition" / "run"]
PLUGIN = "@jupyterlab/apputils-extension:notification"


def _overrides(script: Path) -> dict:
    text = script.read_text()
    match = re.search(r"printf '%s\\n' '(\{.*\})'", text)
    assert match, f"{script}: no overrides.json written"
    return json.loads(match.group(1))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_the_lab_command_writes_its_settings_before_starting(script):
    text = script.read_text()
    lab = text[text.index("    lab)"):]
    assert lab.index("quiet_settings") < lab.index("exec ")
    assert '"$VENV/share/jupyter/lab/settings"' in text


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_jupyterlab_reads_no_news_and_no_update_check_from_them(script, tmp_path):
    (tmp_path / "overrides.json").write_text(json.dumps(_overrides(script)))
    schemas = Path(jupyterlab.__file__).parent / "schemas"
    assert (schemas / "@jupyterlab" / "apputils-extension" / "notification.json").is_file()
    settings, _ = get_settings(str(tmp_path), str(schemas), str(tmp_path / "user"), schema_name=PLUGIN)
    props = settings["schema"]["properties"]
    assert props["fetchNews"]["default"] == "false"
    assert props["checkForUpdates"]["default"] is False
    before, _ = get_settings(str(tmp_path / "none"), str(schemas), str(tmp_path / "user"), schema_name=PLUGIN)
    assert before["schema"]["properties"]["fetchNews"]["default"] != "false"  # the override is what does it
