"""Reinforcement-learning helpers for notebook 13: CartPole episodes, frames drawn without a display
server, a replay buffer, and the pieces of "from notebook to script" (exporting functions, reading a
JSON-lines log).

The environment is gymnasium's ``CartPole-v1`` (pure Python, no download): a pole hinged on a cart,
pushed left (action 0) or right (action 1) by a fixed force every 0.02 s; reward 1 per step while the
pole stays within 12 degrees of upright and the cart within 2.4 units of the centre; episodes are
cut (truncated) at 500 steps. The state is (cart position, cart velocity, pole angle, pole angular
velocity). Given the seed of ``reset``, the whole episode is a deterministic function of the actions:
that is what lets a trusted grader replay a policy's actions (``replay_return``) instead of believing
a reported score.

Nothing here is a solution of the notebook's exercises.
"""
from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

ENV_ID = "CartPole-v1"
MAX_STEPS = 500          # CartPole-v1's time limit: the best return is 500
N_ACTIONS = 2
STATE_DIM = 4


def make_env():
    """A fresh ``CartPole-v1`` (no rendering: drawing is done by ``draw_cartpole``)."""
    import gymnasium as gym

    return gym.make(ENV_ID)


def run_episodes(act: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int],
                 max_steps: int = MAX_STEPS) -> list[dict]:
    """Play one episode per seed, all in lockstep, from ``reset(seed=s)``.

    ``act(states)`` maps the states of the episodes still running, a float32 array (B, 4), to their
    actions (B,) (0 or 1): one call per time step for the whole batch, so a network runs one forward
    pass per step instead of one per episode and step. Returns, per seed, ``{"states": (T+1, 4),
    "actions": (T,), "rewards": (T,), "terminated": bool}``: every state seen (the last one is where
    the episode ended), the actions taken, the rewards received, and whether the pole fell or the cart
    left the track (False: cut at the time limit).
    """
    envs = [make_env() for _ in seeds]
    states = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
    eps = [{"states": [st], "actions": [], "rewards": [], "terminated": False} for st in states]
    running = list(range(len(seeds)))
    for _ in range(max_steps):
        if not running:
            break
        actions = np.asarray(act(np.stack([states[i] for i in running]).astype(np.float32))).reshape(-1)
        still = []
        for i, a in zip(running, actions):
            states[i], reward, terminated, truncated, _ = envs[i].step(int(a))
            e = eps[i]
            e["states"].append(states[i]); e["actions"].append(int(a)); e["rewards"].append(reward)
            e["terminated"] = bool(terminated)
            if not (terminated or truncated):
                still.append(i)
        running = still
    return [{"states": np.asarray(e["states"], dtype=np.float64), "actions": np.asarray(e["actions"], dtype=np.int64),
             "rewards": np.asarray(e["rewards"], dtype=np.float64), "terminated": e["terminated"]} for e in eps]


def run_episode(policy: Callable[[np.ndarray], int], seed: int, max_steps: int = MAX_STEPS) -> dict:
    """One episode with ``policy(state) -> action`` for a single state (4,): see ``run_episodes``."""
    return run_episodes(lambda S: [policy(s) for s in S], [seed], max_steps)[0]


def greedy(model, device=None) -> Callable[[np.ndarray], np.ndarray]:
    """``states (B, 4) -> argmax model(states)`` (B,): the greedy policy of a network that maps (B, 4)
    float32 to (B, 2) scores (Q-values or logits), run in eval mode without gradients."""
    import torch

    def act(states):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(states, dtype=np.float32), device=device)
            return model(x).argmax(-1).cpu().numpy()
    model.eval()
    return act


def episode_returns(act: Callable[[np.ndarray], np.ndarray], seeds: Iterable[int]) -> np.ndarray:
    """The return (sum of rewards: here the number of steps) of one episode per seed, ``act`` as in
    ``run_episodes``."""
    return np.array([e["rewards"].sum() for e in run_episodes(act, list(seeds))])


def play_actions(act: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int]) -> np.ndarray:
    """The actions ``act`` takes on one episode per seed, an int64 array (len(seeds), 500), padded with
    -1 after each episode's end: what a sandbox hands back for a trusted replay (``replay_return``)."""
    out = np.full((len(seeds), MAX_STEPS), -1, dtype=np.int64)
    for i, e in enumerate(run_episodes(act, list(seeds))):
        out[i, :len(e["actions"])] = e["actions"]
    return out


def replay_return(actions: Sequence, seed: int) -> float:
    """Trusted side: replay ``actions`` from ``reset(seed=seed)`` and return the sum of rewards.

    The replay stops at the episode's end (termination or the 500-step limit), at the first action
    that is not 0 or 1 (the -1 padding of ``play_actions``, or anything invalid), or when the actions
    run out: a sequence that ends early simply gets the reward of the steps it played.
    """
    env = make_env()
    env.reset(seed=int(seed))
    total = 0.0
    for a in np.asarray(actions).ravel()[:MAX_STEPS]:
        if not np.isfinite(a) or a not in (0, 1):
            break
        _, reward, terminated, truncated, _ = env.step(int(a))
        total += float(reward)
        if terminated or truncated:
            break
    return total


# -- drawing ---------------------------------------------------------------------------------------

def draw_cartpole(ax, state, title: str | None = None) -> None:
    """Draw CartPole's ``state`` (x, x_dot, theta, theta_dot) on ``ax``: track, cart and pole.
    The pole is drawn 1.0 long (CartPole's ``length`` 0.5 is half the pole); theta is measured from
    the vertical, positive to the right."""
    from matplotlib.patches import Rectangle

    x, _, theta, _ = (float(v) for v in state)
    ax.clear()
    ax.plot([-2.4, 2.4], [0, 0], color="0.6", lw=1)                   # the track, to the edges that end an episode
    ax.plot([-2.4, -2.4], [-0.1, 0.1], color="C3", lw=1)
    ax.plot([2.4, 2.4], [-0.1, 0.1], color="C3", lw=1)
    ax.add_patch(Rectangle((x - 0.25, -0.075), 0.5, 0.15, color="C0"))
    ax.plot([x, x + np.sin(theta)], [0.075, 0.075 + np.cos(theta)], color="C1", lw=4, solid_capstyle="round")
    ax.set_xlim(-2.6, 2.6)
    ax.set_ylim(-0.3, 1.3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_frames(states: np.ndarray, n: int = 8, title: str | None = None):
    """A strip of ``n`` frames evenly spaced over an episode's states (T+1, 4); returns the figure."""
    import matplotlib.pyplot as plt

    idx = np.linspace(0, len(states) - 1, n).round().astype(int)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 1.1))
    for ax, t in zip(np.atleast_1d(axes), idx):
        draw_cartpole(ax, states[t], title=f"t = {t}")
    if title:
        fig.suptitle(title, fontsize=9, y=1.12)
    return fig


def animate(states: np.ndarray, every: int = 4, interval_ms: int = 80):
    """A JavaScript animation (``IPython.display.HTML``) of an episode, one frame every ``every`` steps:
    rendered by matplotlib into the notebook, no display server needed."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    frames = list(range(0, len(states), every))
    fig, ax = plt.subplots(figsize=(4, 1.4))
    anim = FuncAnimation(fig, lambda t: draw_cartpole(ax, states[t], title=f"step {t}"), frames=frames,
                         interval=interval_ms)
    html = HTML(anim.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html


def plot_return_curves(curves: dict, ax=None, title: str = "", window: int = 10):
    """Episode returns per run (``{label: returns}``), each thin, with a moving average of ``window``
    episodes on top; the y axis ends at CartPole's best return, 500."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for i, (label, r) in enumerate(curves.items()):
        r = np.asarray(r, dtype=float)
        ax.plot(r, color=f"C{i}", alpha=0.25, lw=0.8)
        if len(r) >= window:
            smooth = np.convolve(r, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, len(r)), smooth, color=f"C{i}", lw=1.8, label=label)
        else:
            ax.plot(r, color=f"C{i}", lw=1.8, label=label)
    ax.axhline(MAX_STEPS, color="0.5", ls=":", lw=1)
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_ylim(0, MAX_STEPS * 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


# -- replay buffer ---------------------------------------------------------------------------------

class ReplayBuffer:
    """A ring buffer of transitions (s, a, r, s', terminated) in preallocated numpy arrays.

    ``push`` writes at ``position`` and moves it on, wrapping round: once full, the oldest transition
    is overwritten. ``sample(batch, rng)`` draws ``batch`` indices uniformly, with replacement, among
    the ``size`` transitions written so far (never the empty slots).
    """

    def __init__(self, capacity: int, state_dim: int = STATE_DIM):
        self.capacity = int(capacity)
        self.states = np.zeros((capacity, state_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_states = np.zeros((capacity, state_dim), dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0
        self.size = 0

    def push(self, s, a, r, s2, terminated) -> None:
        i = self.position
        self.states[i], self.actions[i], self.rewards[i] = s, a, r
        self.next_states[i], self.terminated[i] = s2, float(terminated)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def __len__(self) -> int:
        return self.size

    def sample(self, batch: int, rng: np.random.Generator, device=None):
        """A batch of torch tensors (states, actions, rewards, next_states, terminated)."""
        import torch

        idx = rng.integers(0, self.size, size=batch)
        arrays = (self.states, self.actions, self.rewards, self.next_states, self.terminated)
        return tuple(torch.as_tensor(a[idx], device=device) for a in arrays)


# -- from notebook to script -----------------------------------------------------------------------

_HEADER = '''"""Written by helpers.rl.export_functions from the notebook: your own functions, so that a script
can import them. Re-run the notebook's export cell after you change one of them."""
import math

import numpy as np
import torch
import torch.nn.functional as F
'''


def export_functions(path, *functions) -> Path:
    """Write the source of ``functions`` (defined in notebook cells) into the module ``path``, under
    the imports the notebook uses (math, numpy as np, torch, torch.nn.functional as F). A function
    that uses another global of the notebook must have it exported too (or defined in the module)."""
    parts = [_HEADER]
    for f in functions:
        parts.append("\n\n" + textwrap.dedent(inspect.getsource(f)).rstrip() + "\n")
    path = Path(path)
    path.write_text("".join(parts))
    return path


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines log, one dict per line (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
