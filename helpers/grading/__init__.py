"""The grading internals notebooks use without opening: the data contract between a student's process
and the trusted grader (``contract``), ``check`` and the sandbox's harvest (``checking``), the diagnosis of
likely mistakes (``diagnosis``), the challenge harness (``challenges``) and the challenge tasks (``tasks``).

Notebooks import ``from helpers import check`` and ``from helpers.challenges import challenge``.
"""
