"""Graded exercises of 03_optimisation: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected outputs come from
the reference (the solution cells of 03_optimisation.ipynb), which tests/unit/test_descent.py also
checks against torch.optim and torch.optim.lr_scheduler.

Every update-rule case starts from a NON-zero state (a zero state hides "used the old state"
mistakes) and some use a large eps (0.1 .. 0.5), so that "eps inside the square root" shows.
Default tolerances throughout: the reference is float64 and a float32 answer is within 1e-4.
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _shape(rng):
    """Any shape (the rules are elementwise, "any shape"): rank 1..3, each axis of size 1..6."""
    return tuple(int(k) for k in rng.integers(1, 7, size=int(rng.integers(1, 4))))


# -- gd_stability ------------------------------------------------------------------------------

def _spd(rng, d):
    """Symmetric positive definite (d, d), eigenvalues spread over [0.1, 10], random eigenvectors."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = np.sort(np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=d)))
    lam[-1] = max(lam[-1], 1.5 * lam[0] + 0.1)  # well separated ends
    A = q @ np.diag(lam) @ q.T
    return (A + A.T) / 2, lam


def _stability_inputs(rng):
    A, lam = _spd(rng, int(rng.integers(1, 9)))  # D in 1..8
    return {"A": A, "lr": float(rng.uniform(0.2, 1.6) * 2.0 / lam[-1])}


def _eig(A):
    return np.linalg.eigvalsh(A)


def _stab(A, lr, lr_max=None, rate=None):
    lam = _eig(A)
    out_lr = 2.0 / lam.max() if lr_max is None else lr_max
    out_rate = np.max(np.abs(1 - lr * lam)) if rate is None else rate
    return float(out_lr), float(out_rate)


STABILITY_MISTAKES = {
    "the limit is 2 / λmax, not 1 / λmax (below 1/λmax there is no overshoot at all; "
    "between 1/ and 2/λmax it zig-zags but still converges)":
        lambda A, lr: _stab(A, lr, lr_max=1.0 / _eig(A).max()),
    "use the LARGEST eigenvalue: the steepest direction is the first to blow up":
        lambda A, lr: _stab(A, lr, lr_max=2.0 / _eig(A).min()),
    "λmax is the largest EIGENVALUE of A, not its largest entry (A is not diagonal)":
        lambda A, lr: _stab(A, lr, lr_max=2.0 / np.max(A)),
    "the rate is the largest |1 - lr * λ|: keep the absolute value, a factor below -1 means divergence":
        lambda A, lr: _stab(A, lr, rate=np.max(1 - lr * _eig(A))),
    "the rate must look at every eigenvalue (the flattest direction is often the slowest), not only λmax":
        lambda A, lr: _stab(A, lr, rate=abs(1 - lr * _eig(A).max())),
    "the rate is the factor on the DISTANCE per step, |1 - lr * λ|, not its square":
        lambda A, lr: _stab(A, lr, rate=np.max(np.abs(1 - lr * _eig(A))) ** 2),
}


# -- update rules ------------------------------------------------------------------------------

def _momentum_inputs(rng):
    s = _shape(rng)
    return {"p": rng.normal(size=s), "g": rng.normal(size=s), "v": rng.normal(size=s),
            "lr": float(rng.uniform(0.01, 0.5)), "momentum": float(rng.uniform(0.3, 0.99))}


MOMENTUM_MISTAKES = {
    "torch adds the raw gradient to the velocity, v = momentum * v + g (no (1 - momentum) factor)":
        lambda p, g, v, lr, mu: (p - lr * (mu * v + (1 - mu) * g), mu * v + (1 - mu) * g),
    "update the velocity first, then step with the NEW velocity: p - lr * v_new":
        lambda p, g, v, lr, mu: (p - lr * v, mu * v + g),
    "the step goes against the velocity: p - lr * v":
        lambda p, g, v, lr, mu: (p + lr * (mu * v + g), mu * v + g),
    "torch keeps lr out of the velocity: v = momentum * v + g, then p = p - lr * v (not v = momentum * v - lr * g)":
        lambda p, g, v, lr, mu: (p + mu * v - lr * g, mu * v - lr * g),
    "torch keeps lr out of the velocity: v = momentum * v + g, then p = p - lr * v (not v = momentum * v + lr * g)":
        lambda p, g, v, lr, mu: (p - (mu * v + lr * g), mu * v + lr * g),
    "the step ignores the velocity: p_new = p - lr * v_new (the velocity IS the step direction)":
        lambda p, g, v, lr, mu: (p - lr * g, mu * v + g),
    "the velocity returned is the old one: return v_new = momentum * v + g as the new state":
        lambda p, g, v, lr, mu: (p - lr * (mu * v + g), v),
}


def _adagrad_inputs(rng):
    s = _shape(rng)
    return {"p": rng.normal(size=s), "g": rng.normal(size=s), "G": rng.uniform(0.0, 2.0, size=s),
            "lr": float(rng.uniform(0.01, 0.5)), "eps": float(rng.choice([1e-10, 0.1, 0.5]))}


ADAGRAD_MISTAKES = {
    "add g**2 to G first, then divide by the root of the NEW sum":
        lambda p, g, G, lr, eps: (p - lr * g / (np.sqrt(G) + eps), G + g * g),
    "eps is added AFTER the square root: g / (sqrt(G) + eps)":
        lambda p, g, G, lr, eps: (p - lr * g / np.sqrt(G + g * g + eps), G + g * g),
    "AdaGrad accumulates the SQUARED gradients: G + g * g":
        lambda p, g, G, lr, eps: (p - lr * g / (np.sqrt(G + np.abs(g)) + eps), G + np.abs(g)),
    "divide by the square ROOT of G (plus eps), not by G itself":
        lambda p, g, G, lr, eps: (p - lr * g / (G + g * g + eps), G + g * g),
    "the state returned is the old G: return G_new = G + g**2, the sum including this step":
        lambda p, g, G, lr, eps: (p - lr * g / (np.sqrt(G + g * g) + eps), G),
    "G accumulates the SQUARED gradients: G + g * g, not G + g":
        lambda p, g, G, lr, eps: (p - lr * g / (np.sqrt(np.abs(G + g)) + eps), G + g),
}


def _rmsprop_inputs(rng):
    s = _shape(rng)
    return {"p": rng.normal(size=s), "g": rng.normal(size=s), "s": rng.uniform(0.0, 2.0, size=s),
            "lr": float(rng.uniform(0.001, 0.2)), "alpha": float(rng.uniform(0.6, 0.995)),
            "eps": float(rng.choice([1e-8, 0.1, 0.5]))}


def _rms(p, g, s, lr, alpha, eps, new_s=None, use_old=False, root=True, eps_inside=False):
    s_new = alpha * s + (1 - alpha) * g * g if new_s is None else new_s
    s_used = s if use_old else s_new
    denom = (np.sqrt(s_used + eps) if eps_inside else np.sqrt(s_used) + eps) if root else s_used + eps
    return p - lr * g / denom, s_new


RMSPROP_MISTAKES = {
    "alpha weights the OLD average: s = alpha * s + (1 - alpha) * g**2 (alpha and 1 - alpha swapped?)":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, lr, a, eps, new_s=(1 - a) * s + a * g * g),
    "the new g**2 enters with the weight (1 - alpha): s = alpha * s + (1 - alpha) * g**2":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, lr, a, eps, new_s=a * s + g * g),
    "eps is added AFTER the square root: g / (sqrt(s) + eps)":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, lr, a, eps, eps_inside=True),
    "update s first, then divide by the root of the NEW average":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, lr, a, eps, use_old=True),
    "divide by the square ROOT of s (plus eps), not by s itself":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, lr, a, eps, root=False),
    "the state returned is the old s: return s_new = alpha * s + (1 - alpha) * g**2":
        lambda p, g, s, lr, a, eps: (_rms(p, g, s, lr, a, eps)[0], s),
    "the step is missing the learning rate: p_new = p - lr * g / (sqrt(s_new) + eps)":
        lambda p, g, s, lr, a, eps: _rms(p, g, s, 1.0, a, eps),
}


def _adam_inputs(rng):
    s = _shape(rng)
    return {"p": rng.normal(size=s), "g": rng.normal(size=s), "m": 0.5 * rng.normal(size=s),
            "v": rng.uniform(0.0, 1.0, size=s), "t": int(rng.choice([1, 2, 3, 5, 10, 50])),
            "lr": float(rng.uniform(0.001, 0.2)), "beta1": float(rng.uniform(0.7, 0.95)),
            "beta2": float(rng.uniform(0.98, 0.9995)), "eps": float(rng.choice([1e-8, 0.1, 0.3]))}


def _adam(p, g, m, v, t, lr, b1, b2, eps, *, correct=True, t_used=None, eps_inside=False, swap=False,
          v_abs=False, old=False, return_hat=False):
    if swap:
        b1, b2 = b2, b1
    m_new = b1 * m + (1 - b1) * g
    v_new = b2 * v + (1 - b2) * (np.abs(g) if v_abs else g * g)
    mm, vv = (m, v) if old else (m_new, v_new)
    tt = t if t_used is None else t_used
    m_hat = mm / (1 - b1 ** tt) if correct else mm
    v_hat = vv / (1 - b2 ** tt) if correct else vv
    denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
    p_new = p - lr * m_hat / denom
    if return_hat:
        return p_new, m_new / (1 - b1 ** t), v_new / (1 - b2 ** t)
    return p_new, m_new, v_new


ADAM_MISTAKES = {
    "the bias correction is missing: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)":
        lambda *a: _adam(*a, correct=False),
    "t is the number of THIS step, counting from 1: the correction is 1 - beta**t (not t + 1)":
        lambda p, g, m, v, t, *a: _adam(p, g, m, v, t, *a, t_used=t + 1),
    "eps is added AFTER the square root: m_hat / (sqrt(v_hat) + eps)":
        lambda *a: _adam(*a, eps_inside=True),
    "beta1 is for the average of g (m), beta2 for the average of g**2 (v): swapped?":
        lambda *a: _adam(*a, swap=True),
    "v averages the SQUARED gradient: v = beta2 * v + (1 - beta2) * g * g":
        lambda *a: _adam(*a, v_abs=True),
    "update m and v first, then step with the NEW averages":
        lambda *a: _adam(*a, old=True),
    "return the raw averages m and v as the new state; the bias-corrected m_hat, v_hat are only for the step":
        lambda *a: _adam(*a, return_hat=True),
}


# -- warmup_cosine_lr --------------------------------------------------------------------------

def _schedule_inputs(rng):
    warmup = int(rng.integers(1, 8))           # W >= 1 (W = 1 included)
    total = warmup + int(rng.integers(1, 30))  # T > W (T = W + 1 included)
    t = np.arange(0, total + int(rng.integers(2, 8)))
    if rng.random() < 0.5:
        t = rng.permutation(t)  # any order: a function of t, not a running state
    base = float(rng.choice([0.1, 1.0, 3e-3]))
    return {"t": t, "base_lr": base, "warmup_steps": warmup, "total_steps": total,
            "min_lr": base * float(rng.choice([0.0, 0.01, 0.1]))}


def _sched(t, base, W, T, mn, *, warm_shift=0, progress_fn=None, target=None, clamp=True, half=0.5,
           angle=np.pi):
    t = np.asarray(t, dtype=np.float64)
    warm = base * (t + warm_shift) / W
    prog = (t - W) / (T - W) if progress_fn is None else progress_fn(t, W, T)
    if clamp:
        prog = np.clip(prog, 0.0, 1.0)
    low = mn if target is None else target
    cosine = low + half * (base - low) * (1 + np.cos(angle * prog))
    return np.where(t < W, warm, cosine)


SCHEDULE_MISTAKES = {
    "the warm-up starts from 0: lr = base_lr * t / warmup_steps (so lr(0) = 0, not base_lr / warmup_steps)":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, warm_shift=1),
    "the cosine starts when the warm-up ends: use the progress (t - warmup_steps) / (total_steps - warmup_steps)":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, progress_fn=lambda t, W, T: t / T),
    "the cosine decays to min_lr, not to 0: min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(...))":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, target=0.0),
    "after total_steps the rate stays at min_lr: clip the progress to [0, 1] (np.clip)":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, clamp=False),
    "the factor 0.5 * (1 + cos) goes from 1 to 0: is the 0.5 missing?":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, half=1.0),
    "the cosine's argument is pi * progress (half a period from base_lr down to min_lr), not progress":
        lambda t, b, W, T, mn: _sched(t, b, W, T, mn, angle=1.0),
}


EXERCISES = [
    Exercise(
        "gd_stability", _stability_inputs,
        fixed=({"A": np.array([[3.0, 1.0], [1.0, 3.0]]), "lr": 0.45},
               {"A": np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.3]]), "lr": 0.1},
               # D = 1; and lr exactly at the limit 2 / λmax (rate 1: the boundary of convergence)
               {"A": np.array([[4.0]]), "lr": 0.3},
               {"A": np.array([[3.0, 1.0], [1.0, 3.0]]), "lr": 0.5}),
        mistakes=STABILITY_MISTAKES,
    ),
    Exercise(
        "sgd_momentum_step", _momentum_inputs,
        fixed=({"p": np.array([1.0, -2.0, 0.5]), "g": np.array([0.5, 1.0, -1.0]), "v": np.array([1.0, 0.0, -0.5]),
                "lr": 0.1, "momentum": 0.9},
               # momentum = 0: "this is plain SGD" (the velocity is then the gradient)
               {"p": np.array([[0.5, -1.0], [2.0, 0.0]]), "g": np.array([[1.0, 0.5], [-0.5, 2.0]]),
                "v": np.array([[0.3, -0.2], [1.0, 0.4]]), "lr": 0.2, "momentum": 0.0}),
        mistakes=MOMENTUM_MISTAKES,
    ),
    Exercise(
        "adagrad_step", _adagrad_inputs,
        fixed=({"p": np.array([1.0, -2.0, 0.5]), "g": np.array([0.5, 1.0, -2.0]), "G": np.array([0.0, 1.0, 4.0]),
                "lr": 0.1, "eps": 1e-10},
               {"p": np.array([[1.0, 0.0], [0.5, -1.0]]), "g": np.array([[0.1, -0.2], [0.3, 0.0]]),
                "G": np.array([[0.01, 0.5], [1.0, 0.2]]), "lr": 0.5, "eps": 0.5}),
        mistakes=ADAGRAD_MISTAKES,
    ),
    Exercise(
        "rmsprop_step", _rmsprop_inputs,
        fixed=({"p": np.array([1.0, -2.0, 0.5]), "g": np.array([0.5, 1.0, -2.0]), "s": np.array([0.0, 1.0, 4.0]),
                "lr": 0.01, "alpha": 0.99, "eps": 1e-8},
               {"p": np.array([[1.0, 0.0], [0.5, -1.0]]), "g": np.array([[0.1, -0.2], [0.3, 0.0]]),
                "s": np.array([[0.01, 0.5], [1.0, 0.2]]), "lr": 0.1, "alpha": 0.9, "eps": 0.5}),
        mistakes=RMSPROP_MISTAKES,
    ),
    Exercise(
        "adam_step", _adam_inputs,
        fixed=({"p": np.array([1.0, -2.0, 0.5]), "g": np.array([0.5, 10.0, -0.01]), "m": np.zeros(3),
                "v": np.zeros(3), "t": 1, "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
               {"p": np.array([[1.0, 0.0], [0.5, -1.0]]), "g": np.array([[0.1, -0.2], [0.3, 0.05]]),
                "m": np.array([[0.2, -0.1], [0.0, 0.3]]), "v": np.array([[0.05, 0.5], [0.01, 0.2]]),
                "t": 3, "lr": 0.01, "beta1": 0.9, "beta2": 0.99, "eps": 0.1}),
        mistakes=ADAM_MISTAKES,
    ),
    Exercise(
        "warmup_cosine_lr", _schedule_inputs,
        fixed=({"t": np.arange(14), "base_lr": 0.1, "warmup_steps": 3, "total_steps": 10, "min_lr": 0.01},
               # W = 1 and T = W + 1 (the shortest schedule), steps in reverse order
               {"t": np.array([4, 3, 2, 1, 0]), "base_lr": 1.0, "warmup_steps": 1, "total_steps": 2, "min_lr": 0.1}),
        mistakes=SCHEDULE_MISTAKES,
    ),
]
