"""The one error every layer raises for what a user must fix (a course, a batch, a setting)."""


class CourseError(Exception):
    """A user error: printed as one line by the CLI, never as a traceback."""
