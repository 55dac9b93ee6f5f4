"""autograder: the instructor's tool over nbgrader (release, grade, feedback, export),
with sandboxed execution and scores computed outside the student's process."""
