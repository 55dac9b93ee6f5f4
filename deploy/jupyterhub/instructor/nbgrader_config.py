"""nbgrader in the instructor's server on the course's JupyterHub (JUPYTER_CONFIG_PATH points here).

The course's own configuration (COURSE_ROOT/nbgrader_config.py: course root, sandboxed
grading), the hub's exchange with private permissions, and the gradebook of autograder
($GRADEBOOK_URL, else the course config's, else the sqlite file), so formgrader, `nbgrader`
and `autograder` in this server all see the same course.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

load_subconfig(os.path.join(os.environ["COURSE_ROOT"], "nbgrader_config.py"))  # noqa: F821

from autograder.course import Course  # noqa: E402
from autograder.exchange.plugins import FACTORY  # noqa: E402

c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", c.Exchange.root)
for _kind, _cls in FACTORY.items():
    setattr(c.ExchangeFactory, _kind, _cls)
c.CourseDirectory.db_url = Course(Path(os.environ["COURSE_ROOT"]).resolve()).db_url
