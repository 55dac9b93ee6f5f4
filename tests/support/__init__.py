"""What tests share: the course and its CLI (``course``), submissions to grade (``submissions``), a
synthetic class (``report_class``), a JupyterLab page in Chromium (``lab_page``), a throw-away PostgreSQL
(``pg``), and the measured cost of each test file (``file_costs``)."""
