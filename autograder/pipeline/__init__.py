"""The nbgrader preprocessors the course config names: execute in the sandbox, trusted scoring, sanitising, late penalties."""
