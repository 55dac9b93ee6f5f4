"""helpers: the one package every course notebook imports.

Light at import time (no torch import, no data loading, no seeding). Submodules:

- ``helpers.grading.checking``  -- ``check(name, func)``, the call every graded test cell makes
- ``helpers.seeding``   -- ``seed_everything(seed)``
- ``helpers.data``      -- shipped real data (digits, names), downloads, synthetic sets
- ``helpers.gradcheck`` -- finite-difference gradient checks for numpy and torch
- ``helpers.training``  -- a small, readable training loop with progress bars
- ``helpers.plots``     -- figures for every lecture (each function returns the figure)
- ``helpers.surfaces``  -- 2-D loss surfaces (quadratic, Rosenbrock, least squares) and their contours
- ``helpers.descent``   -- descent paths by torch.optim, update rules vs torch, regimes, maps, schedules
- ``helpers.lr_finder`` -- the learning-rate range test and loss curves of a small net on the digits
- ``helpers.demos``     -- the ipywidgets demos of notebook 03 (wiring only)
- ``helpers.metrics``   -- ``report(name, value, target=...)``: figures a notebook reaches
- ``helpers.grading``   -- what grading runs (``check``, the challenge harness, diagnoses): not for reading

``check(name, func)`` (``helpers.grading.checking``) is the call every graded test cell makes.
"""
from helpers.grading.checking import check
from helpers.seeding import seed_everything

__all__ = ["check", "seed_everything"]
