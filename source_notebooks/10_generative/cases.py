"""Graded exercises of 10_generative: inputs, tolerances and known mistakes.

Instructor-only: never released, never visible to the sandbox. The expected
outputs come from the reference (the solution cells of 10_generative.ipynb).
All tolerances are the defaults (rtol 1e-4, atol 1e-6): every exercise is plain
numpy on float64 inputs, and a float32 answer is still far inside them.

Every random part of the exercises (the eps of the reparameterisation, the noise
of q(x_t | x_0) and of the reverse step) is an explicit input, so every output is
deterministic. Sizes are drawn so that every axis varies, down to a single sample.

Not catalogued: "detaching the wrong side" of a GAN. It changes which network a
gradient reaches, never a loss value, so value-based checks cannot observe it;
the notebook's training cell shows where `detach()` goes and why.
"""
import numpy as np

from autograder.authoring.exercises import Exercise


def _softplus(a):
    """log(1 + e^a), without overflow."""
    return np.logaddexp(0.0, a)


def _naive_log_sigmoid(a):
    """log(sigmoid(a)) computed the unstable way: -inf once sigmoid(a) rounds to 0."""
    with np.errstate(divide="ignore", over="ignore"):
        return np.log(1.0 / (1.0 + np.exp(-a)))


def _naive_log_one_minus_sigmoid(a):
    with np.errstate(divide="ignore", over="ignore"):
        return np.log(1.0 - 1.0 / (1.0 + np.exp(-a)))


def _nan_ok(f):
    with np.errstate(invalid="ignore"):
        return f()


# -- 1. reparameterise -----------------------------------------------------------------------

def _latent_inputs(rng):
    n, k = int(rng.integers(1, 7)), int(rng.integers(1, 8))
    return {"mu": rng.normal(size=(n, k)), "logvar": rng.normal(0.0, 1.5, (n, k)), "eps": rng.normal(size=(n, k))}


_REPARAM_FIXED = {"mu": np.array([[0.0, 1.0, -2.0]]), "logvar": np.array([[0.0, 2.0 * np.log(2.0), -2.0]]),
                  "eps": np.array([[1.0, 1.0, -1.0]])}  # sigma = 1, 2, e^-1


# -- 2. kl_divergence ------------------------------------------------------------------------

def _kl_inputs(rng):
    n, k = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    return {"mu": rng.normal(size=(n, k)), "logvar": rng.normal(0.0, 1.0, (n, k))}


def _kl(mu, logvar, var=None, scale=0.5, reduce=np.sum, one=1.0, mu_power=2):
    var = np.exp(logvar) if var is None else var
    with np.errstate(divide="ignore", invalid="ignore"):
        return scale * reduce(var + mu ** mu_power - one - np.log(var), axis=1)


_KL_FIXED = ({"mu": np.zeros((2, 3)), "logvar": np.zeros((2, 3))},  # q = the prior: KL = 0
             {"mu": np.array([[1.0, -2.0], [0.0, 0.5]]), "logvar": np.array([[0.0, 0.0], [np.log(4.0), -1.0]])})


# -- 3. elbo ---------------------------------------------------------------------------------

def _elbo_inputs(rng):
    n, d, k = int(rng.integers(1, 6)), int(rng.integers(1, 11)), int(rng.integers(1, 5))  # D = 1 included
    x = rng.random((n, d))
    x[rng.random((n, d)) < 0.3] = 0.0  # digits have many exact 0s and some exact 1s
    x[rng.random((n, d)) < 0.15] = 1.0
    return {"x": x, "logits": rng.normal(0.0, 3.0, (n, d)),
            "mu": rng.normal(size=(n, k)), "logvar": rng.normal(0.0, 1.0, (n, k))}


def _elbo(x, logits, mu, logvar, kl_sign=-1.0, batch=np.mean, pixels=np.sum, naive=False, kl_scale=0.5):
    if naive:
        with np.errstate(invalid="ignore"):
            log_px = x * _naive_log_sigmoid(logits) + (1.0 - x) * _naive_log_one_minus_sigmoid(logits)
    else:
        log_px = -(x * _softplus(-logits) + (1.0 - x) * _softplus(logits))
    return batch(pixels(log_px, axis=1) + kl_sign * _kl(mu, logvar, scale=kl_scale))


_ELBO_FIXED = ({"x": np.array([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 0.0, 0.25]]),
                "logits": np.array([[-60.0, 60.0, 0.0, -3.0], [2.0, 50.0, -1.0, 0.5]]),  # saturated sigmoids
                "mu": np.array([[0.5, -1.0], [0.0, 2.0]]), "logvar": np.array([[0.0, -1.0], [1.0, 0.0]])},
               # logits of +-800: e^800 overflows, so log1p(exp(l)) is inf where the answer is 800
               {"x": np.array([[0.0, 1.0, 0.0, 1.0, 0.5]]), "logits": np.array([[800.0, -800.0, -800.0, 800.0, 2.0]]),
                "mu": np.array([[0.3]]), "logvar": np.array([[-0.5]])})


# -- 4-5. GAN losses -------------------------------------------------------------------------

def _disc_inputs(rng):
    n_real, n_fake = (int(v) for v in rng.choice(np.arange(1, 9), size=2, replace=False))  # different sizes
    return {"real_logits": rng.normal(0.0, 3.0, n_real), "fake_logits": rng.normal(0.0, 3.0, n_fake)}


def _disc(real_logits, fake_logits, swap=False, combine="sum", naive=False):
    r, f = (-real_logits, fake_logits) if not swap else (real_logits, -fake_logits)
    if naive:
        real_term, fake_term = -_naive_log_sigmoid(real_logits), -_naive_log_one_minus_sigmoid(fake_logits)
    else:
        real_term, fake_term = _softplus(r), _softplus(f)
    if combine == "pooled":
        return np.mean(np.concatenate([real_term, fake_term]))
    total = np.mean(real_term) + np.mean(fake_term)
    return total / 2 if combine == "half" else total


_DISC_FIXED = ({"real_logits": np.array([-800.0, 2.0, 0.5]), "fake_logits": np.array([800.0, -1.0])},)


def _gen_inputs(rng):
    return {"fake_logits": rng.normal(0.0, 3.0, int(rng.integers(1, 10)))}


_GEN_FIXED = ({"fake_logits": np.array([-800.0, 1.0, -3.0])},)  # D rejects the first fake with certainty


# -- 6. noise_schedule -----------------------------------------------------------------------

def _schedule_inputs(rng):
    return {"T": int(rng.integers(2, 13)), "beta_1": float(rng.uniform(1e-4, 0.05)),
            "beta_T": float(rng.uniform(0.1, 0.5))}


def _schedule(T, beta_1, beta_T, bars="cumprod", endpoint=True, grid=None):
    betas = np.concatenate([[0.0], np.linspace(beta_1, beta_T, T, endpoint=endpoint)])
    if grid == "T+1":    # T + 1 points from beta_1 to beta_T, the first then set to 0
        betas = np.linspace(beta_1, beta_T, T + 1)
        betas[0] = 0.0
    elif grid == "from0":  # np.linspace(0, beta_T, T + 1): beta_1 ignored
        betas = np.linspace(0.0, beta_T, T + 1)
    alphas = 1.0 - betas
    alpha_bars = {"cumprod": np.cumprod(alphas), "none": alphas, "cumsum": 1.0 - np.cumsum(betas)}[bars]
    return betas, alphas, alpha_bars


# -- 7. q_sample -----------------------------------------------------------------------------

def _random_betas(rng, T):
    """An arbitrary increasing schedule, beta_0 = 0 first: code must not assume np.linspace."""
    return np.concatenate([[0.0], np.sort(rng.uniform(0.02, 0.45, T))])


def _q_inputs(rng):
    n, d, T = int(rng.integers(1, 7)), int(rng.integers(1, 9)), int(rng.integers(2, 11))  # D = 1, T = 2 included
    t = rng.integers(0, T + 1, n)
    t[0] = rng.choice([0, 1, T])  # the ends of the schedule in every case
    return {"x0": rng.uniform(-1.0, 1.0, (n, d)), "t": t, "betas": _random_betas(rng, T),
            "eps": rng.normal(size=(n, d))}


def _q(x0, t, betas, eps, bars="cumprod", signal_sqrt=True, noise_sqrt=True, shrink=True):
    alphas = 1.0 - betas
    a = {"cumprod": np.cumprod(alphas), "alpha": alphas, "exclusive": np.cumprod(alphas) / alphas}[bars][t][:, None]
    signal = (np.sqrt(a) if signal_sqrt else a) if shrink else 1.0
    return signal * x0 + (np.sqrt(1.0 - a) if noise_sqrt else 1.0 - a) * eps


_Q_FIXED = ({"x0": np.array([[1.0, -1.0], [0.5, 0.5], [1.0, 1.0]]), "t": np.array([0, 1, 3]),
             "betas": np.array([0.0, 0.1, 0.2, 0.3]), "eps": np.array([[0.3, -0.7], [1.0, 2.0], [-1.0, 0.5]])},)


# -- 8. reverse_step -------------------------------------------------------------------------

def _reverse_inputs(rng):
    n, d, T = int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(2, 11))  # D = 1 included
    return {"x_t": rng.normal(size=(n, d)), "t": int(rng.integers(1, T + 1)), "eps_pred": rng.normal(size=(n, d)),
            "betas": _random_betas(rng, T), "z": rng.normal(size=(n, d))}


def _reverse(x_t, t, eps_pred, betas, z, var="posterior", std=True, coef="right", scale="alpha"):
    alphas = 1.0 - betas
    bars = np.cumprod(alphas)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = {"right": betas[t] / np.sqrt(1.0 - bars[t]), "alpha": betas[t] / np.sqrt(1.0 - alphas[t]),
             "no_sqrt": betas[t] / (1.0 - bars[t]), "previous": betas[t] / np.sqrt(1.0 - bars[t - 1])}[coef]
        mean = (x_t - c * eps_pred) / np.sqrt(alphas[t] if scale == "alpha" else bars[t])
        v = {"posterior": (1.0 - bars[t - 1]) / (1.0 - bars[t]) * betas[t], "beta": betas[t], "none": 0.0,
             "inverted": (1.0 - bars[t]) / (1.0 - bars[t - 1]) * betas[t]}[var]
        return mean + (np.sqrt(v) if std else v) * z


def _reverse_fixed(t):
    rng = np.random.default_rng(t)
    return {"x_t": rng.normal(size=(3, 2)), "t": t, "eps_pred": rng.normal(size=(3, 2)),
            "betas": np.array([0.0, 0.1, 0.2, 0.3, 0.4]), "z": rng.normal(size=(3, 2))}


EXERCISES = [
    Exercise(
        "reparameterise", _latent_inputs,
        fixed=(_REPARAM_FIXED,),
        mistakes={
            "eps is scaled by the standard deviation sigma = exp(logvar / 2), not by the variance exp(logvar)":
                lambda mu, lv, eps: mu + np.exp(lv) * eps,
            "logvar is log(sigma^2), not sigma: the standard deviation is exp(logvar / 2)":
                lambda mu, lv, eps: mu + lv * eps,
            "the sign in the exponent is flipped: sigma = exp(+logvar / 2)":
                lambda mu, lv, eps: mu + np.exp(-0.5 * lv) * eps,
            "z = mu + sigma * eps: the mean mu is missing":
                lambda mu, lv, eps: np.exp(0.5 * lv) * eps,
            "sqrt(logvar) is not sigma (and is NaN for a negative logvar): sigma = exp(logvar / 2)":
                lambda mu, lv, eps: _nan_ok(lambda: mu + np.sqrt(lv) * eps),
        },
        pure=True,
    ),
    Exercise(
        "kl_divergence", _kl_inputs,
        fixed=_KL_FIXED,
        mistakes={
            "the KL sign is flipped: KL(q || p) >= 0, it is +1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2)":
                lambda mu, lv: -_kl(mu, lv),
            "the 1/2 in front of the KL is missing": lambda mu, lv: _kl(mu, lv, scale=1.0),
            "logvar was used as the variance: sigma^2 = exp(logvar), and log sigma^2 is logvar itself":
                lambda mu, lv: _kl(mu, lv, var=lv),
            "sigma was used where the variance sigma^2 = exp(logvar) belongs":
                lambda mu, lv: _kl(mu, lv, var=np.exp(0.5 * lv)),
            "the KL of a diagonal Gaussian SUMS over the K latent dimensions (not a mean)":
                lambda mu, lv: _kl(mu, lv, reduce=np.mean),
            "the -1 inside the sum is missing: each term sigma^2 + mu^2 - 1 - log sigma^2 is 0 when q is the prior":
                lambda mu, lv: _kl(mu, lv, one=0.0),
            "mu enters the KL squared: sigma^2 + mu^2 - 1 - log sigma^2": lambda mu, lv: _kl(mu, lv, mu_power=1),
        },
        pure=True,
    ),
    Exercise(
        "elbo", _elbo_inputs,
        fixed=_ELBO_FIXED,
        mistakes={
            "that is the loss -ELBO: the ELBO is log p(x|z) - KL, a (negative) lower bound on log p(x)":
                lambda *a: -_elbo(*a),
            "the KL is SUBTRACTED from the reconstruction log-likelihood, not added": lambda *a: _elbo(*a, kl_sign=1.0),
            "the text fixes a MEAN over the N digits of the batch, not a sum": lambda *a: _elbo(*a, batch=np.sum),
            "log p(x|z) SUMS over the D pixels (a mean over pixels is not a log-likelihood in nats)":
                lambda *a: _elbo(*a, pixels=np.mean),
            "log(sigmoid(l)) (or log1p(exp(l))) overflows for saturated logits: use log sigmoid(l) = -logaddexp(0, -l)":
                lambda *a: _elbo(*a, naive=True),
            "the KL term's 1/2 is missing: KL = 1/2 sum(sigma^2 + mu^2 - 1 - log sigma^2)":
                lambda *a: _elbo(*a, kl_scale=1.0),
            "the KL term is missing: the ELBO is the reconstruction log-likelihood MINUS the KL":
                lambda *a: _elbo(*a, kl_sign=0.0),
        },
        pure=True,
    ),
    Exercise(
        "discriminator_loss", _disc_inputs,
        fixed=_DISC_FIXED,
        mistakes={
            "the labels are swapped: real samples have label 1 (loss -log D(x)), fakes label 0 (-log(1 - D(G(z))))":
                lambda r, f: _disc(r, f, swap=True),
            "the text ADDS the two means (real and fake); it does not average them": lambda r, f: _disc(r, f, combine="half"),
            "take the mean of each term over its own batch (real and fake batches differ in size), then add":
                lambda r, f: _disc(r, f, combine="pooled"),
            "log(sigmoid(l)) (or log1p(exp(l))) overflows for large |l|: use -log sigmoid(l) = logaddexp(0, -l)":
                lambda r, f: _disc(r, f, naive=True),
            "the sign is flipped: the discriminator MINIMISES -[log D(x) + log(1 - D(G(z)))]":
                lambda r, f: -_disc(r, f),
            "the fakes' term uses the label 'real': for a fake it is -log(1 - D) = log(1 + e^{+l})":
                lambda r, f: float(np.mean(_softplus(-r)) + np.mean(_softplus(-f))),
        },
        pure=True,
    ),
    Exercise(
        "generator_loss", _gen_inputs,
        fixed=_GEN_FIXED,
        mistakes={
            "that is the saturating loss log(1 - D(G(z))): it has no gradient when D rejects the fakes; "
            "use the non-saturating -log D(G(z))":
                lambda f: np.mean(-_softplus(f)),
            "the generator wants D to call its fakes REAL (label 1): -log D(G(z)), not -log(1 - D(G(z)))":
                lambda f: np.mean(_softplus(f)),
            "average over the batch (a mean), not a sum": lambda f: np.sum(_softplus(-f)),
            "log(sigmoid(l)) overflows when D rejects a fake with certainty: use -log sigmoid(l) = logaddexp(0, -l)":
                lambda f: np.mean(-_naive_log_sigmoid(f)),
        },
        pure=True,
    ),
    Exercise(
        "noise_schedule", _schedule_inputs,
        fixed=({"T": 4, "beta_1": 0.1, "beta_T": 0.4}, {"T": 2, "beta_1": 1e-4, "beta_T": 0.02}),
        mistakes={
            "alpha_bar_t is the PRODUCT alpha_1 * ... * alpha_t (np.cumprod), not alpha_t itself":
                lambda T, b1, bT: _schedule(T, b1, bT, bars="none"),
            "1 - (beta_1 + ... + beta_t) only approximates alpha_bar_t: take the product of the alphas (np.cumprod)":
                lambda T, b1, bT: _schedule(T, b1, bT, bars="cumsum"),
            "beta_T must be the last beta: np.linspace(beta_1, beta_T, T) includes its endpoint":
                lambda T, b1, bT: _schedule(T, b1, bT, endpoint=False),
            "betas[1] must be beta_1: betas = [0] followed by np.linspace(beta_1, beta_T, T) (T values), "
            "not T + 1 values whose first is then set to 0":
                lambda T, b1, bT: _schedule(T, b1, bT, grid="T+1"),
            "beta_1 is not used: betas = [0] followed by np.linspace(beta_1, beta_T, T), not np.linspace(0, beta_T, T + 1)":
                lambda T, b1, bT: _schedule(T, b1, bT, grid="from0"),
        },
    ),
    Exercise(
        "q_sample", _q_inputs,
        fixed=_Q_FIXED,
        mistakes={
            "alpha_t was used where alpha_bar_t = alpha_1 * ... * alpha_t belongs (x_t is t steps away from x_0)":
                lambda *a: _q(*a, bars="alpha"),
            "alpha_bar_t includes step t: alpha_1 * ... * alpha_t (np.prod(alphas[:t]) stops at t - 1)":
                lambda *a: _q(*a, bars="exclusive"),
            "the noise scale is off by a square root: the noise's std is sqrt(1 - alpha_bar_t)":
                lambda *a: _q(*a, noise_sqrt=False),
            "the signal scale is off by a square root: x_0 is multiplied by sqrt(alpha_bar_t)":
                lambda *a: _q(*a, signal_sqrt=False),
            "x_0 must shrink as noise is added: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps":
                lambda *a: _q(*a, shrink=False),
        },
        pure=True,
    ),
    Exercise(
        "reverse_step", _reverse_inputs,
        fixed=(_reverse_fixed(1), _reverse_fixed(4)),  # the last step (no noise) and the first (t = T)
        mistakes={
            "wrong variance: the text uses the posterior variance (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, "
            "not beta_t":
                lambda *a: _reverse(*a, var="beta"),
            "the noise term sigma_t * z is missing (only the last step, t = 1, adds none)":
                lambda *a: _reverse(*a, var="none"),
            "the noise scale is off by a square root: sigma_t = sqrt(posterior variance) multiplies z":
                lambda *a: _reverse(*a, std=False),
            "alpha_t was used where alpha_bar_t belongs: eps_pred is scaled by beta_t / sqrt(1 - alpha_bar_t)":
                lambda *a: _reverse(*a, coef="alpha"),
            "the eps coefficient is beta_t / sqrt(1 - alpha_bar_t): the square root is missing":
                lambda *a: _reverse(*a, coef="no_sqrt"),
            "alpha_bar_t was used where alpha_t belongs: one step divides by sqrt(alpha_t)":
                lambda *a: _reverse(*a, scale="bar"),
            "the posterior variance is upside down: (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t "
            "(it is 0 at t = 1, where alpha_bar_0 = 1)":
                lambda *a: _reverse(*a, var="inverted"),
            "the eps coefficient uses alpha_bar_t of the CURRENT step: beta_t / sqrt(1 - alpha_bar_t), not alpha_bar_{t-1}":
                lambda *a: _reverse(*a, coef="previous"),
        },
        pure=True,
    ),
]


# --------------------------------------------------------------------------- #
# Issue 19: the model-design challenge of section 6 (autograder/authoring/challenges.py). The grader
# retrains the student's fit_denoiser in the sandbox and gives it the 1,000 held-out test digits,
# 250 at each of the steps t = 10, 25, 40, 60 of the notebook's schedule (helpers.grading.challenges.
# noised_at_steps), with the steps' order and the noise drawn from course/heldout/SECRET; the clean
# digits stay outside. Thresholds: the reference (a 9,201-parameter convolutional denoiser told the
# noise level, 3 epochs, about 12 CPU s) reaches an MSE of 0.018 on validation (standard error of a
# 1,000-digit figure: 0.0005, so full marks at 0.021 leave about 6 of them); the mean training digit
# scores 0.067, the clipped rescaled noisy input 0.12, an all-zero output about 0.1.
# --------------------------------------------------------------------------- #
from autograder.authoring.challenges import Challenge  # noqa: E402

CHALLENGES = [
    Challenge("digits_denoiser", task="digits_denoiser", heldout="digits_test.npz", metric="mse",
              full=0.021, zero=0.05, max_parameters=50_000, cpu_seconds=40,
              allowance_seconds=10),  # the solution's graded run: 12.6 CPU s, its fit 10.5 s: 2.1 s besides
]
