"""Moodle and Canvas formats, both directions: their submission exports in (``intake``), their grade imports out (``export``)."""
