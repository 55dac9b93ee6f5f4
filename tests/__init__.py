"""The test suite, by level: unit/ (no notebook kernel, seconds in all), course/ (the notebooks and their
exercises), system/ (the CLI end to end, hub, cluster, hostile submissions; all slow), browser/
(Chromium; all slow). Shared code is the ``support`` package."""
