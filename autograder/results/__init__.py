"""What a graded course tells: the grades CSV (``export``), the class report (``report``), similarity between submissions (``similarity``)."""
