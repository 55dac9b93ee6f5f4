"""Running a submission contained: bubblewrap, the kernel and its watchdog (``kernel``), processes and their CPU time (``processes``). No course state."""
