"""Plausible bugs in 13_reinforcement's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/13_reinforcement/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. discounted_returns, linear_epsilon and epsilon_greedy
get numpy arrays; the other exercises get torch tensors (float64, int64, bool).
"""
import numpy as np
import torch
import torch.nn.functional as F


# -- 1. discounted_returns ---------------------------------------------------------------------

def returns_cumsum(rewards, dones, gamma):
    """An undiscounted reverse cumulative sum, episode ends ignored."""
    return np.cumsum(rewards[::-1])[::-1].copy()


def returns_in_place(rewards, dones, gamma):
    """Right values, but accumulates into the caller's rewards array."""
    for t in range(len(rewards) - 2, -1, -1):
        if not dones[t]:
            rewards[t] += gamma * rewards[t + 1]
    return rewards.copy()


def returns_discount_reward(rewards, dones, gamma):
    """Discounts every reward, the first one too."""
    G = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        if dones[t]:
            running = 0.0
        running = gamma * running + gamma * rewards[t]
        G[t] = running
    return G


def returns_next_done(rewards, dones, gamma):
    """Looks at the next step's done flag instead of this step's."""
    G = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        nxt = dones[t + 1] if t + 1 < len(rewards) else True
        running = rewards[t] + (0.0 if nxt else gamma * running)
        G[t] = running
    return G


# -- 2. reinforce_loss -------------------------------------------------------------------------

def reinforce_torch_std(logits, actions, returns):
    """torch's default std (Bessel's correction)."""
    logp = torch.log_softmax(logits, -1)[torch.arange(len(actions)), actions]
    adv = (returns - returns.mean()) / (returns.std() + 1e-8)
    return -(logp * adv).mean()


def reinforce_cross_entropy_sign(logits, actions, returns):
    """Uses cross-entropy (already -log pi) and negates it once more."""
    adv = (returns - returns.mean()) / (returns.std(correction=0) + 1e-8)
    return -(F.cross_entropy(logits, actions, reduction="none") * adv).mean()


def reinforce_no_baseline(logits, actions, returns):
    """Divides by the std but keeps the mean in."""
    logp = torch.log_softmax(logits, -1)[torch.arange(len(actions)), actions]
    return -(logp * returns / (returns.std(correction=0) + 1e-8)).mean()


def reinforce_softmax_rows(logits, actions, returns):
    """Normalises over the steps (dim 0)."""
    logp = torch.log_softmax(logits, 0)[torch.arange(len(actions)), actions]
    adv = (returns - returns.mean()) / (returns.std(correction=0) + 1e-8)
    return -(logp * adv).mean()


# -- 3. linear_epsilon -------------------------------------------------------------------------

def epsilon_unclipped(step, eps_start, eps_end, decay_steps):
    """Linear, but keeps going down after decay_steps."""
    return eps_start - (eps_start - eps_end) * np.asarray(step, dtype=float) / decay_steps


def epsilon_exponential(step, eps_start, eps_end, decay_steps):
    """An exponential decay instead of the linear one the text asks for."""
    return eps_end + (eps_start - eps_end) * np.exp(-np.asarray(step, dtype=float) / decay_steps)


# -- 4. epsilon_greedy -------------------------------------------------------------------------

def greedy_boundary(q_values, epsilon, u, random_actions):
    """Greedy where u > epsilon: u == epsilon explores."""
    return np.where(u > epsilon, q_values.argmax(1), random_actions)


def greedy_inverted(q_values, epsilon, u, random_actions):
    """Explores where u >= epsilon."""
    return np.where(u >= epsilon, random_actions, q_values.argmax(1))


def greedy_min(q_values, epsilon, u, random_actions):
    """The smallest Q-value as the greedy action."""
    return np.where(u < epsilon, random_actions, q_values.argmin(1))


# -- 5. td_target ------------------------------------------------------------------------------

def td_no_mask(rewards, next_q, terminated, gamma):
    """Forgets the terminal flag."""
    return rewards + gamma * next_q.max(1).values


def td_times_terminated(rewards, next_q, terminated, gamma):
    """Multiplies by terminated instead of (1 - terminated)."""
    return rewards + gamma * terminated.double() * next_q.max(1).values


def td_mean(rewards, next_q, terminated, gamma):
    """Averages the next Q-values instead of taking their max."""
    return rewards + gamma * (~terminated).double() * next_q.mean(1)


# -- 6. q_learning_grad ------------------------------------------------------------------------

def _qg(W, b, states, actions, rewards, next_states, terminated, gamma, detach=True, reduction="mean"):
    W = W.detach().clone().requires_grad_(True)
    b = b.detach().clone().requires_grad_(True)
    q = (states @ W.T + b)[torch.arange(len(actions)), actions]
    nq = next_states @ W.T + b
    y = rewards + gamma * (~terminated).double() * nq.max(1).values
    if detach:
        y = y.detach()
    loss = F.mse_loss(q, y, reduction=reduction)
    loss.backward()
    return loss.detach(), W.grad, b.grad


def qgrad_no_detach(*args):
    """Lets the gradient flow through the target."""
    return _qg(*args, detach=False)


def qgrad_sum(*args):
    """Sums the squared errors."""
    return _qg(*args, reduction="sum")


# -- 7. soft_update ----------------------------------------------------------------------------

def soft_in_place(target, online, tau):
    """Right values, but updates the caller's target tensor in place."""
    target.mul_(1 - tau).add_(tau * online)
    return target.clone()


def soft_swapped(target, online, tau):
    """Keeps tau of the target, takes (1 - tau) of the online network."""
    return tau * target + (1 - tau) * online


MUTANTS = [
    ("discounted_returns", "undiscounted reverse cumsum, episode ends ignored", returns_cumsum),
    ("discounted_returns", "accumulates into the caller's rewards", returns_in_place),
    ("discounted_returns", "the first reward discounted too", returns_discount_reward),
    ("discounted_returns", "the next step's done flag", returns_next_done),
    ("reinforce_loss", "torch's default (Bessel) std", reinforce_torch_std),
    ("reinforce_loss", "cross-entropy negated once more", reinforce_cross_entropy_sign),
    ("reinforce_loss", "no baseline", reinforce_no_baseline),
    ("reinforce_loss", "log-softmax over the steps", reinforce_softmax_rows),
    ("linear_epsilon", "not clipped", epsilon_unclipped),
    ("linear_epsilon", "exponential decay", epsilon_exponential),
    ("epsilon_greedy", "u == epsilon explores", greedy_boundary),
    ("epsilon_greedy", "explores where u >= epsilon", greedy_inverted),
    ("epsilon_greedy", "argmin", greedy_min),
    ("td_target", "terminal mask forgotten", td_no_mask),
    ("td_target", "times terminated", td_times_terminated),
    ("td_target", "mean of the next Q-values", td_mean),
    ("q_learning_grad", "gradient through the target", qgrad_no_detach),
    ("q_learning_grad", "summed loss", qgrad_sum),
    ("soft_update", "in place on the caller's target", soft_in_place),
    ("soft_update", "tau on the wrong side", soft_swapped),
]
