"""helpers: the one package every course notebook imports.

Light at import time (no torch import, no data loading, no seeding). Submodules:

- ``helpers.checking``  -- ``check(name, func)``, the call every graded test cell makes
- ``helpers.seeding``   -- ``seed_everything(seed)``
- ``helpers.data``      -- shipped real data (digits, names), downloads, synthetic sets
- ``helpers.gradcheck`` -- finite-difference gradient checks for numpy and torch
- ``helpers.training``  -- a small, readable training loop with progress bars
- ``helpers.plots``     -- figures for every lecture (each function returns the figure)
"""
from helpers.checking import check
from helpers.seeding import seed_everything

__all__ = ["check", "seed_everything"]
