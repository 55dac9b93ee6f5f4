"""Graded exercises of 13_reinforcement: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected outputs come from the
reference (the solution cells of 13_reinforcement.ipynb).

discounted_returns, linear_epsilon and epsilon_greedy are numpy exercises; reinforce_loss, td_target,
q_learning_grad and soft_update are torch ones (arrays arrive as float64, int64 or bool tensors).

How the cases tell the mistakes apart:
- returns: several episodes in one array (an episode end inside, and one at the last step; a last step
  NOT marked done, which still ends the array), gamma away from 0 and 1, rewards of both signs; fixed
  cases with gamma = 0 (G = r), gamma = 1, T = 1 and no episode end marked at all.
- REINFORCE: returns of varied spread (so dividing by the std, its Bessel correction and the baseline
  all show), T != A, a case with logits in the thousands (log(softmax) underflows to -inf there, where
  log_softmax stays finite), T = 1 and equal returns (advantage 0/(0 + 1e-8) = 0: loss 0, while the
  Bessel-corrected std gives NaN at T = 1), one action (A = 1: log pi = 0).
- epsilon: steps before, exactly at and after decay_steps, decay_steps = 1, a scalar step, a 2-D array.
- epsilon-greedy: u exactly equal to epsilon (0.5, 0.25: exact in binary; greedy by the text's `u < eps`),
  a tie between the best actions (the first one wins), epsilon 0 and 1, A = 1, N != A and N == A.
- TD target: a mix of terminated and running transitions (a mask forgotten or inverted shows), B == A
  (a max over the batch axis keeps the shape), gamma = 0, all terminated.
- semi-gradient: non-terminal transitions, so that the gradient through the target is not zero; A == D
  (a transposed W keeps the shapes).
- soft update: tau small and away from 0.5 (swapped roles show), tau = 0 and tau = 1, ranks 0 to 3.
"""
import numpy as np
import torch

from autograder.authoring.exercises import Exercise


# -- 1. discounted returns ---------------------------------------------------------------------

def _returns_inputs(rng, T=None, gamma=None):
    T = T or int(rng.integers(1, 13))
    dones = rng.uniform(size=T) < 0.3
    if T >= 4:
        dones[int(rng.integers(1, T - 2))] = True          # at least one episode end inside
    dones[-1] = bool(rng.uniform() < 0.5)                  # the last step marked or not: it ends the array either way
    return {"rewards": rng.normal(0.5, 1.0, size=T), "dones": dones,
            "gamma": float(gamma if gamma is not None else rng.uniform(0.5, 0.95))}


def _returns(rewards, dones, gamma, mask=True, extra_gamma=False, reset_after=False, exponent_from_start=False):
    T = len(rewards)
    G = np.zeros(T)
    g = 0.0
    if exponent_from_start:                                # gamma**k with k counted from the array's start
        for t in range(T):
            total = 0.0
            for k in range(t, T):
                total += gamma ** k * rewards[k]
                if mask and dones[k]:
                    break
            G[t] = total
        return G
    for t in range(T - 1, -1, -1):
        if reset_after:                                    # the reset happens after the terminal step's return
            g = rewards[t] + gamma * g
            G[t] = g
            if dones[t]:
                g = 0.0
            continue
        if mask and dones[t]:
            g = 0.0
        g = gamma * (rewards[t] + g) if extra_gamma else rewards[t] + gamma * g
        G[t] = g
    return G


def _returns_forward(rewards, dones, gamma):
    G = np.zeros(len(rewards))
    g = 0.0
    for t in range(len(rewards)):                          # sums the PAST rewards
        g = rewards[t] + gamma * g
        G[t] = g
        if dones[t]:
            g = 0.0
    return G


_rng = np.random.default_rng(1301)
_RET_FIXED = (
    {"rewards": np.array([1.0, 2.0, 3.0, 4.0, 5.0]), "dones": np.array([False, True, False, False, False]),
     "gamma": 0.5},                                        # two episodes, the last step not marked
    {"rewards": np.array([1.0, -1.0, 2.0]), "dones": np.array([False, False, True]), "gamma": 0.0},  # G = r
    {"rewards": np.array([1.0, 1.0, 1.0, 1.0]), "dones": np.array([False, True, False, True]), "gamma": 1.0},
    {"rewards": np.array([3.0]), "dones": np.array([False]), "gamma": 0.9},       # T = 1
    {"rewards": np.array([0.5, 1.0, -2.0, 1.0, 0.25, 1.0]),
     "dones": np.array([True, False, False, True, False, True]), "gamma": 0.75},  # an episode of one step first
)


# -- 2. REINFORCE loss -------------------------------------------------------------------------

def _reinforce_inputs(rng, T=None, A=None, scale=1.0):
    T = T or int(rng.integers(2, 12))
    A = A or int(rng.choice([a for a in range(2, 6) if a != T] or [2]))
    returns = rng.normal(rng.uniform(-5, 50), rng.uniform(0.5, 20), size=T)
    return {"logits": rng.normal(0, 1.5, size=(T, A)) * scale, "actions": rng.integers(0, A, size=T),
            "returns": returns}


def _reinforce(logits, actions, returns, sign=-1.0, baseline=True, normalise=True, correction=0, dim=-1,
               naive=False, reduce="mean", logp=True):
    if naive:
        lp = torch.log(torch.softmax(logits, dim=dim))
    elif logp:
        lp = torch.log_softmax(logits, dim=dim)
    else:
        lp = logits                                         # logits used as if they were log-probabilities
    lp = lp.gather(-1, actions[:, None]).squeeze(-1)
    A = returns - returns.mean() if baseline else returns
    if normalise:
        A = A / (returns.std(correction=correction) + 1e-8)
    out = lp * A
    return sign * (out.mean() if reduce == "mean" else out.sum())


def _reinforce_probs(logits, actions, returns):
    p = torch.softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
    A = (returns - returns.mean()) / (returns.std(correction=0) + 1e-8)
    return -(p * A).mean()


_REINF_FIXED = (
    _reinforce_inputs(_rng, T=5, A=3),
    _reinforce_inputs(_rng, T=4, A=2, scale=800.0),        # logits in the thousands
    {"logits": np.array([[0.5, -1.0]]), "actions": np.array([1]), "returns": np.array([7.0])},   # T = 1: loss 0
    {"logits": np.array([[0.2, 0.1, -0.3], [1.0, 0.0, 2.0]]), "actions": np.array([0, 2]),
     "returns": np.array([4.0, 4.0])},                     # equal returns: advantages 0
    {"logits": np.array([[0.3], [-1.2], [2.0]]), "actions": np.array([0, 0, 0]),
     "returns": np.array([1.0, 2.0, 4.0])},                # one action: log pi = 0
    _reinforce_inputs(_rng, T=3, A=3),                     # T == A
)


# -- 3. linear epsilon -------------------------------------------------------------------------

def _eps_inputs(rng):
    decay = int(rng.integers(1, 50))
    shape = [(), (int(rng.integers(1, 8)),), (int(rng.integers(1, 4)), int(rng.integers(1, 4)))][int(rng.integers(0, 3))]
    step = rng.integers(0, 2 * decay + 3, size=shape)
    start = float(rng.uniform(0.5, 1.0))
    return {"step": step if shape else int(step), "eps_start": start, "eps_end": float(rng.uniform(0.0, 0.2)),
            "decay_steps": decay}


def _eps(step, eps_start, eps_end, decay_steps, clip=True, to_zero=False, swapped=False, plus_one=False):
    s = np.asarray(step, dtype=np.float64) + (1.0 if plus_one else 0.0)
    frac = 1.0 - s / decay_steps
    if clip:
        frac = np.maximum(frac, 0.0)
    if swapped:
        return eps_start + (eps_end - eps_start) * frac
    if to_zero:
        return eps_start * frac
    return eps_end + (eps_start - eps_end) * frac


_EPS_FIXED = (
    {"step": np.array([0, 2, 4, 5, 100]), "eps_start": 1.0, "eps_end": 0.05, "decay_steps": 4},   # before, at, after
    {"step": np.array([0, 1, 2]), "eps_start": 0.5, "eps_end": 0.1, "decay_steps": 1},           # decay_steps = 1
    {"step": 3, "eps_start": 1.0, "eps_end": 0.0, "decay_steps": 8},                            # a scalar step
    {"step": np.array([[0, 10], [20, 30]]), "eps_start": 0.9, "eps_end": 0.1, "decay_steps": 20},
)


# -- 4. epsilon-greedy -------------------------------------------------------------------------

def _greedy_inputs(rng, N=None, A=None):
    N = N or int(rng.integers(1, 9))
    A = A or int(rng.integers(1, 6))
    return {"q_values": rng.normal(size=(N, A)), "epsilon": float(rng.uniform(0.2, 0.8)),
            "u": rng.uniform(size=N), "random_actions": rng.integers(0, A, size=N)}


def _eg(q_values, epsilon, u, random_actions, op="lt", pick="argmax", axis=1, use_eps=True):
    if pick == "argmax":
        g = np.argmax(q_values, axis=axis)
    elif pick == "argmin":
        g = np.argmin(q_values, axis=axis)
    else:                                                  # the LAST maximum on ties
        g = q_values.shape[1] - 1 - np.argmax(q_values[:, ::-1], axis=1)
    if not use_eps:
        return g.astype(np.int64)
    explore = {"lt": u < epsilon, "le": u <= epsilon, "gt": u > epsilon}[op]
    return np.where(explore, random_actions, g).astype(np.int64)


_EG_FIXED = (
    {"q_values": np.array([[0.1, 0.9, 0.3], [2.0, -1.0, 0.5], [0.0, 0.2, 0.1], [1.0, 3.0, 2.0]]), "epsilon": 0.5,
     "u": np.array([0.1, 0.5, 0.7, 0.25]), "random_actions": np.array([2, 2, 0, 0])},          # u == epsilon: greedy
    {"q_values": np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]), "epsilon": 0.25,
     "u": np.array([0.25, 0.9]), "random_actions": np.array([2, 0])},                          # ties: the first max
    {"q_values": np.array([[0.3, -0.2], [0.1, 0.4]]), "epsilon": 0.0, "u": np.array([0.0, 0.5]),
     "random_actions": np.array([1, 0])},                                                     # epsilon 0: greedy
    {"q_values": np.array([[0.3, -0.2], [0.1, 0.4], [1.0, 0.0]]), "epsilon": 1.0, "u": np.array([0.0, 0.5, 0.999]),
     "random_actions": np.array([1, 0, 1])},                                                  # epsilon 1: random
    {"q_values": np.array([[0.5], [-0.5]]), "epsilon": 0.5, "u": np.array([0.2, 0.9]),
     "random_actions": np.array([0, 0])},                                                     # A = 1
)


# -- 5. TD target ------------------------------------------------------------------------------

def _td_inputs(rng, B=None, A=None):
    B = B or int(rng.integers(2, 10))
    A = A or int(rng.choice([a for a in range(1, 5) if a != B]))
    term = rng.uniform(size=B) < 0.4
    term[0], term[-1] = True, False                        # both kinds in every case
    return {"rewards": rng.normal(1.0, 1.0, size=B), "next_q": rng.normal(2.0, 2.0, size=(B, A)),
            "terminated": term, "gamma": float(rng.uniform(0.5, 0.99))}


def _td(rewards, next_q, terminated, gamma, mask=True, invert=False, reduce="max", dim=1, mask_reward=False,
        gamma_reward=False):
    best = {"max": lambda x: x.max(dim=dim).values, "mean": lambda x: x.mean(dim=dim),
            "sum": lambda x: x.sum(dim=dim)}[reduce](next_q)
    keep = (~terminated).to(rewards.dtype) if not invert else terminated.to(rewards.dtype)
    if not mask:
        keep = torch.ones_like(rewards)
    if mask_reward:
        return keep * (rewards + gamma * best)
    if gamma_reward:
        return gamma * (rewards + keep * best)
    return rewards + gamma * keep * best


_TD_FIXED = (
    {"rewards": np.array([1.0, 1.0, 0.5]), "next_q": np.array([[2.0, 3.0, 1.0], [4.0, -1.0, 0.0], [0.5, 0.25, 2.0]]),
     "terminated": np.array([False, True, False]), "gamma": 0.5},                # B == A
    {"rewards": np.array([1.0]), "next_q": np.array([[5.0]]), "terminated": np.array([False]), "gamma": 0.9},  # B = A = 1
    {"rewards": np.array([1.0, 2.0]), "next_q": np.array([[1.0, 7.0], [3.0, 2.0]]),
     "terminated": np.array([False, False]), "gamma": 0.0},                      # gamma = 0
    {"rewards": np.array([1.0, -1.0, 0.5]), "next_q": np.array([[1.0, 7.0], [3.0, 2.0], [0.0, 4.0]]),
     "terminated": np.array([True, True, True]), "gamma": 0.99},                 # all terminated: y = r
)


# -- 6. semi-gradient of the Q-learning loss ----------------------------------------------------

def _qgrad_inputs(rng, B=None, A=None, D=None):
    B = B or int(rng.integers(2, 9))
    A = A or int(rng.integers(1, 5))
    D = D or int(rng.integers(1, 6))
    term = rng.uniform(size=B) < 0.3
    term[-1] = False                                       # at least one bootstrap: the target's gradient shows
    return {"W": rng.normal(0, 0.7, size=(A, D)), "b": rng.normal(0, 0.5, size=A),
            "states": rng.normal(size=(B, D)), "actions": rng.integers(0, A, size=B),
            "rewards": rng.normal(1.0, 1.0, size=B), "next_states": rng.normal(size=(B, D)),
            "terminated": term, "gamma": float(rng.uniform(0.5, 0.99))}


def _qgrad(W, b, states, actions, rewards, next_states, terminated, gamma, through_target=False, all_actions=False,
           reduce="mean", half=False, mask=True, transpose=False):
    W = W.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    Q = (lambda s: s @ W + b) if transpose else (lambda s: s @ W.T + b)
    keep = (~terminated).to(rewards.dtype) if mask else torch.ones_like(rewards)
    y = rewards + gamma * keep * Q(next_states).max(dim=1).values
    if not through_target:
        y = y.detach()
    q = Q(states)
    err = (q - y[:, None]) ** 2 if all_actions else (q.gather(1, actions[:, None]).squeeze(1) - y) ** 2
    loss = err.mean() if reduce == "mean" else err.sum()
    if half:
        loss = 0.5 * loss
    loss.backward()
    db = b.grad if b.grad is not None else torch.zeros_like(b)
    return loss.detach(), W.grad, db


_QG_FIXED = (
    _qgrad_inputs(_rng, B=4, A=3, D=3),                    # A == D: a transposed W keeps the shapes
    {**_qgrad_inputs(_rng, B=1, A=1, D=1), "terminated": np.array([False])},      # one transition, one action
    _qgrad_inputs(_rng, B=5, A=2, D=4),
)


# -- 7. soft update ----------------------------------------------------------------------------

def _soft_inputs(rng):
    shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(0, 4))))
    return {"target": rng.normal(size=shape), "online": rng.normal(size=shape), "tau": float(rng.uniform(0.01, 0.3))}


def _soft(target, online, tau, mode="ok"):
    if mode == "swapped":
        return (1 - tau) * online + tau * target
    if mode == "copy":
        return online.clone()
    if mode == "add":
        return target + tau * online
    return (1 - tau) * target + tau * online


_SOFT_FIXED = (
    {"target": np.array([[1.0, 2.0], [3.0, 4.0]]), "online": np.array([[0.0, 0.0], [10.0, -4.0]]), "tau": 0.125},
    {"target": np.array([1.0, -2.0, 3.0]), "online": np.array([5.0, 5.0, 5.0]), "tau": 0.0},    # never moves
    {"target": np.array([1.0, -2.0, 3.0]), "online": np.array([5.0, 5.0, 5.0]), "tau": 1.0},    # a hard copy
    {"target": np.array(2.0), "online": np.array(-6.0), "tau": 0.25},                         # rank 0
)


EXERCISES = [
    Exercise(
        "discounted_returns", _returns_inputs, fixed=_RET_FIXED, visible=2, hidden=6, pure=True, dtype="float",
        mistakes={
            "gamma applied once too often: r_t itself is discounted (G_t = gamma (r_t + G_t+1)); "
            "G_t = r_t + gamma G_t+1": lambda r, d, g: _returns(r, d, g, extra_gamma=True),
            "the episode ends are ignored: returns run on into the next episode; restart at every "
            "step where dones is True": lambda r, d, g: _returns(r, d, g, mask=False),
            "the reset comes one step late: the last step of an episode must have G = r (reset the running "
            "return before adding that step's reward)": lambda r, d, g: _returns(r, d, g, reset_after=True),
            "the discount's exponent counts from the array's start (gamma**k) instead of from t (gamma**(k - t))":
                lambda r, d, g: _returns(r, d, g, exponent_from_start=True),
            "returns summed forwards (the past rewards) instead of backwards (the future ones)": _returns_forward,
            "gamma ignored: undiscounted sums": lambda r, d, g: _returns(r, d, 1.0),
        },
    ),
    Exercise(
        "reinforce_loss", _reinforce_inputs, fixed=_REINF_FIXED, visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "the sign of the loss: minimising must RAISE log pi of actions with a positive advantage, "
            "so the loss is -mean(log pi * A)": lambda l, a, G: _reinforce(l, a, G, sign=1.0),
            "no baseline: subtract the mean return before dividing by the std":
                lambda l, a, G: _reinforce(l, a, G, baseline=False),
            "advantages not normalised: divide (G - mean) by the std + 1e-8":
                lambda l, a, G: _reinforce(l, a, G, normalise=False),
            "raw returns used as advantages: no baseline and no normalisation":
                lambda l, a, G: _reinforce(l, a, G, baseline=False, normalise=False),
            "the std with Bessel's correction (torch's default): the text asks for the population std, "
            "std(correction=0)": lambda l, a, G: _reinforce(l, a, G, correction=1),
            "log-softmax over the wrong axis: normalise over the actions (dim=-1)":
                lambda l, a, G: _reinforce(l, a, G, dim=0),
            "log(softmax(...)) underflows to -inf for large logits: use torch.log_softmax":
                lambda l, a, G: _reinforce(l, a, G, naive=True),
            "probabilities used instead of log-probabilities": _reinforce_probs,
            "the logits used as log-probabilities: apply log_softmax first":
                lambda l, a, G: _reinforce(l, a, G, logp=False),
            "summed over the steps instead of averaged (divide by T)":
                lambda l, a, G: _reinforce(l, a, G, reduce="sum"),
        },
    ),
    Exercise(
        "linear_epsilon", _eps_inputs, fixed=_EPS_FIXED, visible=2, hidden=6, dtype="float",
        mistakes={
            "not clipped: after decay_steps epsilon must stay at eps_end (max(0, 1 - step/decay_steps))":
                lambda s, a, b, d: _eps(s, a, b, d, clip=False),
            "decays to 0 instead of to eps_end": lambda s, a, b, d: _eps(s, a, b, d, to_zero=True),
            "start and end swapped: epsilon must go from eps_start down to eps_end":
                lambda s, a, b, d: _eps(s, a, b, d, swapped=True),
            "off by one: at step 0 epsilon is eps_start": lambda s, a, b, d: _eps(s, a, b, d, plus_one=True),
        },
    ),
    Exercise(
        "epsilon_greedy", _greedy_inputs, fixed=_EG_FIXED, visible=2, hidden=6, pure=True, dtype="int",
        mistakes={
            "exploration inverted: take the random action where u < epsilon (probability epsilon), not u > epsilon":
                lambda q, e, u, r: _eg(q, e, u, r, op="gt"),
            "u equal to epsilon must be greedy: explore where u < epsilon, not u <= epsilon":
                lambda q, e, u, r: _eg(q, e, u, r, op="le"),
            "argmin instead of argmax: the greedy action has the HIGHEST Q-value":
                lambda q, e, u, r: _eg(q, e, u, r, pick="argmin"),
            "ties: take the first maximum (np.argmax), not the last": lambda q, e, u, r: _eg(q, e, u, r, pick="last"),
            "epsilon ignored: always greedy": lambda q, e, u, r: _eg(q, e, u, r, use_eps=False),
            "always the random action: use it only where u < epsilon": lambda q, e, u, r: r.astype(np.int64),
        },
    ),
    Exercise(
        "td_target", _td_inputs, fixed=_TD_FIXED, visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "the terminal mask forgotten: a terminated transition's target is its reward alone":
                lambda r, q, t, g: _td(r, q, t, g, mask=False),
            "the terminal mask inverted: bootstrap where the episode goes on, not where it terminated":
                lambda r, q, t, g: _td(r, q, t, g, invert=True),
            "the mask applied to the reward too: only the bootstrap term is masked":
                lambda r, q, t, g: _td(r, q, t, g, mask_reward=True),
            "gamma applied once too often: the reward is not discounted, y = r + gamma max Q'":
                lambda r, q, t, g: _td(r, q, t, g, gamma_reward=True),
            "the mean over the actions instead of the max": lambda r, q, t, g: _td(r, q, t, g, reduce="mean"),
            "the sum over the actions instead of the max": lambda r, q, t, g: _td(r, q, t, g, reduce="sum"),
            "max over the batch axis: take the max over the actions (dim=1)":
                lambda r, q, t, g: _td(r, q, t, g, dim=0),
        },
    ),
    Exercise(
        "q_learning_grad", _qgrad_inputs, fixed=_QG_FIXED, visible=2, hidden=6, framework="torch", pure=True,
        builds_on=("td_target",),
        mistakes={
            "the gradient flows through the target: compute y under torch.no_grad() (or detach it)":
                lambda *a: _qgrad(*a, through_target=True),
            "the loss over every action: use the Q-value of the action taken only (gather)":
                lambda *a: _qgrad(*a, all_actions=True),
            "the loss summed instead of averaged over the batch": lambda *a: _qgrad(*a, reduce="sum"),
            "a factor 1/2 in the loss: the text's loss is the plain mean squared TD error":
                lambda *a: _qgrad(*a, half=True),
            "the terminal mask forgotten in the target": lambda *a: _qgrad(*a, mask=False),
            "W transposed: Q(s) = s @ W.T + b, W has shape (A, D)": lambda *a: _qgrad(*a, transpose=True),
        },
    ),
    Exercise(
        "soft_update", _soft_inputs, fixed=_SOFT_FIXED, visible=2, hidden=6, framework="torch", pure=True,
        mistakes={
            "tau on the wrong side: the target keeps (1 - tau) of itself and takes tau of the online network":
                lambda t, o, tau: _soft(t, o, tau, mode="swapped"),
            "a hard copy of the online network: that is tau = 1": lambda t, o, tau: _soft(t, o, tau, mode="copy"),
            "target + tau * online: the target's own part must shrink to (1 - tau)":
                lambda t, o, tau: _soft(t, o, tau, mode="add"),
            "tau ignored: the target never moves": lambda t, o, tau: t.clone(),
        },
    ),
]

from autograder.authoring.challenges import Challenge  # noqa: E402

CHALLENGES = [
    Challenge("cartpole_policy", task="cartpole_policy", heldout="cartpole_seeds.npz", metric="mean return",
              full=475.0, zero=200.0, max_parameters=10_000, cpu_seconds=20,
              allowance_seconds=10),  # the solution's graded run: 5.6 CPU s, its fit 3.5 s: 2.1 s besides
]
