"""The CartPole challenge (13): a policy network, scored by its mean return on held-out episodes.

What ``fit()`` returns maps a float32 batch of CartPole states (B, 4) to action scores (B, 2); the
agent takes the arg-max (greedy). In the sandbox, ``outputs`` plays one episode per given seed and
returns the ACTIONS taken (N, 500), -1 after each episode's end: never a return or a score. The trusted
side (``score``) REPLAYS every episode from its seed with gymnasium and adds up the rewards, so a
submission cannot report its own score: an action other than 0 or 1 before the episode ends stops the
replay there (the return so far), and actions past the episode's end are ignored.

Held-out seeds (``cartpole_seeds.npz``): 100 environment seeds drawn from the instructor's secret
(``seed_for("cartpole_seeds.npz: episode seeds")``), in [2**31, 2**62) so that they never meet the
public ones (the validation seeds 900..999, the notebook's training and evaluation seeds, all < 10**7).
A seed only fixes the episode's random start (each of the 4 state values uniform in [-0.05, 0.05]).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from helpers.grading.tasks.base import Task

HELDOUT_FILE = "cartpole_seeds.npz"
N_HELDOUT = 100
VALIDATION_SEEDS = tuple(range(900, 1000))   # public: the notebook reports the mean return on these


class CartPolePolicy(Task):
    """fit() (no arguments) -> a policy network: (B, 4) float32 states -> (B, 2) action scores (greedy
    arg-max). Scored by the mean return of one episode per held-out seed, replayed on the trusted side."""

    name, metric, higher_is_better = "cartpole_policy", "mean return", True
    items = "episodes"
    advice = ("train longer within the budget (more updates, batches of several episodes), judge the GREEDY "
              "policy on the validation seeds (the sampling policy's training returns look worse), try a "
              "larger learning rate or a wider hidden layer; several seeds tell you whether a change really helped.")

    def fit_arguments(self) -> tuple:
        return ()

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        seeds = np.array(VALIDATION_SEEDS, dtype=np.int64)
        return seeds, seeds            # inputs: the seeds; targets: the seeds again (score replays them)

    def outputs(self, model: Any, inputs: Any, batch: int = 250) -> np.ndarray:
        """Play one greedy episode per seed in ``inputs`` (N,) int64: the actions (N, 500), -1 after the end."""
        from helpers import rl

        seeds = [int(s) for s in np.asarray(inputs).reshape(-1)]
        return rl.play_actions(rl.greedy(model), seeds).astype(np.float64)

    def output_shape(self, n: int) -> tuple[int, ...]:
        from helpers import rl

        return (n, rl.MAX_STEPS)

    def score(self, outputs: np.ndarray, targets: Any) -> float:
        """The mean return of the episodes replayed from the seeds ``targets`` (N,) with ``outputs`` (N, 500)."""
        from helpers import rl

        seeds = np.asarray(targets).reshape(-1)
        return float(np.mean([rl.replay_return(actions, int(s)) for actions, s in zip(outputs, seeds)]))

    def heldout(self, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        seeds = arrays["seeds"].astype(np.int64)
        return seeds, seeds            # the sandbox needs the seeds to play; the replay uses them again

    def describe(self, value: float) -> str:
        return f"{value:.1f}"

    def heldout_file(self) -> tuple[str, Any]:
        """cartpole_seeds.npz: the held-out episode seeds, drawn from the secret."""

        def build(digits: np.ndarray, labels: np.ndarray, seed_for: Any) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(seed_for(f"{HELDOUT_FILE}: episode seeds"))
            seeds = rng.integers(2 ** 31, 2 ** 62, size=N_HELDOUT, dtype=np.int64)
            return {"seeds": seeds.astype(np.int64)}

        return HELDOUT_FILE, build
