"""Grading on submit: a JupyterHub service that grades each exchange submission as it arrives.

attempts    the service's record (``course/ondemand/state.json``): the queue, each student's graded
            attempts, which assignments the instructor opened or closed, and the rules that decide
            whether a submission is graded (the syllabus's ``attempts``, the student's deadline)
service     the loop (collect, decide, grade with the same pipeline as ``autograder grade``, return
            the feedback, record) and the web page each student sees, behind the hub's login
"""
