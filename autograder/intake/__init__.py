"""Taking submissions in: folders and zips read safely (``collect``: one ``Refusal`` type for every way in) and the roster."""
