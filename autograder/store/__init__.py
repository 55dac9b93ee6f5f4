"""The only writer of the gradebook (nbgrader's API: ``gradebook``) and of the outcome files (``outcomes``); a worker's result written into the course (``results``)."""
