"""nbgrader configuration of the course. Paths are absolute, computed from this file,
so `nbgrader ...` and `autograder ...` work from any folder."""
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests,
                                    GetGrades, IgnorePattern, LimitOutput)

from autograder.pipeline.execute import SandboxedExecute
from autograder.pipeline.sanitize import FeedbackOutputs, StudentContent
from autograder.pipeline.scoring import TrustedScores

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.root = str(HERE)
c.CourseDirectory.course_id = "dl-course"
c.CourseDirectory.source_directory = str(REPO / "source_notebooks")
c.CourseDirectory.release_directory = str(REPO / "release")
# cases.py holds the hidden cases and known-wrong versions: never released or copied. rl_script/ is what
# 13's solution notebook writes when run in place (the script and the solved functions it exports).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "cases.py", "rl_script"]

# nbgrader's exchange (for JupyterHub-style collection), kept inside the course.
c.Exchange.root = str(HERE / "exchange")
(HERE / "exchange").mkdir(exist_ok=True)  # git-ignored; nbgrader complains when it is missing

# Missing or deleted test cells are put back from the gradebook before grading.
c.OverwriteCells.add_missing_cells = True

# Cells tagged `demo` (training runs, plots, widgets) are not run when grading: graded work is
# judged on the grader's inputs only, so grading stays fast. Students still run them.
c.SandboxedExecute.skip_tags = ["demo"]

# Every limit of a graded submission (time, memory, processes, output) is a SandboxPolicy
# setting (autograder/config.py lists them all, with their defaults). A cell that runs past its
# limit is interrupted; the cells after the notebook's limit are not run.
c.SandboxPolicy.cell_timeout = 60
c.SandboxPolicy.notebook_timeout = 600
c.Execute.interrupt_on_timeout = True

# Torch's and numpy's harmless warnings on stderr are dropped from graded notebooks.
c.IgnorePattern.pattern = r"(UserWarning|DeprecationWarning|FutureWarning|RuntimeWarning)"
c.IgnorePattern.enabled = True
c.LimitOutput.max_lines = 300

# Autograding: run in the sandbox, then score outside it against the reference.
c.Autograde.autograde_preprocessors = [
    SandboxedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    StudentContent,  # student HTML/JS is data: sanitised before formgrader or feedback shows it
    TrustedScores,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Late submissions (a due date per assignment in syllabus.toml; the submission time from nbgrader's
# exchange or a timestamp.txt) lose 10 % of their score per started day late (autograder/pipeline/late.py).
c.AssignLatePenalties.plugin_class = "autograder.pipeline.late.PerDayPenalty"
c.PerDayPenalty.percent_per_day = 10

# Feedback never shows hidden tests, student HTML/JS that could run, or outputs computed from
# hidden inputs: the student's source and the trusted verdicts only (autograder.pipeline.sanitize).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, StudentContent, FeedbackOutputs,
                                    CSSHTMLHeaderPreprocessor]

# `nbgrader export` writes the same grades CSV (with outcomes) as `autograder export`.
c.ExportApp.plugin_class = "autograder.results.export.OutcomeCsvExport"
