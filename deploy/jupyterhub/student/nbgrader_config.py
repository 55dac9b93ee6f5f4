"""nbgrader in a student's server on the course's JupyterHub (JUPYTER_CONFIG_PATH points here).

The hub sets NBGRADER_EXCHANGE and COURSE_ID. Submissions go through autograder.exchange.instructor's
PrivateSubmit: readable by the student and the instructors only (nbgrader alone leaves them 0777).
"""
import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
c.CourseDirectory.course_id = os.environ.get("COURSE_ID", "dl-course")
c.ExchangeFactory.submit = "autograder.exchange.plugins.PrivateSubmit"
