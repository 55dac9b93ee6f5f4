"""Plausible bugs in 10_generative's exercises, written from the released text as a student might
(not copies of the mistakes catalogued in source_notebooks/10_generative/cases.py).

Read by tests/course/test_mutants.py: every mutant must lose its exercise's points, and most must get a
first feedback line that names a likely mistake. The grader never reads this file. The exercises
are numpy ones: arguments arrive as float64 / int64 arrays and plain ints.
"""
import numpy as np


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# -- 1. reparameterise ------------------------------------------------------------------------------

def reparam_own_noise(mu, logvar, eps):
    """Draws its own noise instead of using the eps it is given."""
    return mu + np.exp(0.5 * logvar) * np.random.standard_normal(mu.shape)


def reparam_in_place(mu, logvar, eps):
    """Right values, but eps is scaled in place (the caller's eps changes)."""
    eps *= np.exp(0.5 * logvar)
    return mu + eps


def reparam_sqrt_logvar(mu, logvar, eps):
    """Takes the square root of the log-variance as sigma (NaN where logvar < 0)."""
    with np.errstate(invalid="ignore"):
        return mu + np.sqrt(logvar) * eps


# -- 2. kl_divergence -------------------------------------------------------------------------------

def kl_no_minus_one(mu, logvar):
    """Forgets the -1 inside the sum."""
    return 0.5 * np.sum(np.exp(logvar) + mu ** 2 - logvar, axis=1)


def kl_axis0(mu, logvar):
    """Sums over the batch axis instead of the latent dimensions."""
    return 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=0)


def kl_mu_not_squared(mu, logvar):
    """mu instead of mu^2."""
    return 0.5 * np.sum(np.exp(logvar) + mu - 1.0 - logvar, axis=1)


# -- 3. elbo ----------------------------------------------------------------------------------------

def elbo_epsilon_in_log(x, logits, mu, logvar):
    """Clips the probabilities with a small epsilon instead of the stable form."""
    p = _sigmoid(logits)
    log_px = np.sum(x * np.log(p + 1e-8) + (1 - x) * np.log(1 - p + 1e-8), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.mean(log_px - kl))


def elbo_log1p_exp(x, logits, mu, logvar):
    """log(1 + e^a) written as np.log1p(np.exp(a)): overflows for large logits."""
    with np.errstate(over="ignore", invalid="ignore"):
        log_px = -np.sum(x * np.log1p(np.exp(-logits)) + (1 - x) * np.log1p(np.exp(logits)), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.mean(log_px - kl))


def elbo_kl_without_half(x, logits, mu, logvar):
    """Writes the KL out again, but without its 1/2."""
    log_px = -np.sum(x * np.logaddexp(0.0, -logits) + (1 - x) * np.logaddexp(0.0, logits), axis=1)
    kl = np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.mean(log_px - kl))


def elbo_no_kl(x, logits, mu, logvar):
    """Returns the reconstruction term only."""
    log_px = -np.sum(x * np.logaddexp(0.0, -logits) + (1 - x) * np.logaddexp(0.0, logits), axis=1)
    return float(np.mean(log_px))


# -- 4. discriminator_loss --------------------------------------------------------------------------

def disc_fakes_as_real(real_logits, fake_logits):
    """Both terms with the 'real' label: -log D on the fakes too."""
    return float(np.mean(np.logaddexp(0.0, -real_logits)) + np.mean(np.logaddexp(0.0, -fake_logits)))


def disc_log1p_exp(real_logits, fake_logits):
    """log(1 + e^a) as np.log1p(np.exp(a)): inf for confident logits."""
    with np.errstate(over="ignore"):
        return float(np.mean(np.log1p(np.exp(-real_logits))) + np.mean(np.log1p(np.exp(fake_logits))))


# -- 5. generator_loss ------------------------------------------------------------------------------

def gen_epsilon_in_log(fake_logits):
    """-log(sigmoid + epsilon): finite, but wrong once D rejects a fake with confidence."""
    with np.errstate(over="ignore"):
        return float(-np.mean(np.log(_sigmoid(fake_logits) + 1e-8)))


# -- 6. noise_schedule ------------------------------------------------------------------------------

def schedule_linspace_T_plus_1(T, beta_1, beta_T):
    """T + 1 evenly spaced values, the first then overwritten by 0: betas[1] is not beta_1."""
    betas = np.linspace(beta_1, beta_T, T + 1)
    betas[0] = 0.0
    alphas = 1.0 - betas
    return betas, alphas, np.cumprod(alphas)


def schedule_from_zero(T, beta_1, beta_T):
    """np.linspace(0, beta_T, T + 1): the 0 first, but beta_1 ignored."""
    betas = np.linspace(0.0, beta_T, T + 1)
    alphas = 1.0 - betas
    return betas, alphas, np.cumprod(alphas)


# -- 7. q_sample ------------------------------------------------------------------------------------

def q_no_new_axis(x0, t, betas, eps):
    """Forgets [:, None]: (N,) against (N, D) broadcasts over the wrong axis when N == D."""
    alpha_bar = np.cumprod(1.0 - betas)[t]
    return np.sqrt(alpha_bar) * x0 + np.sqrt(1.0 - alpha_bar) * eps


def q_in_place(x0, t, betas, eps):
    """Right values, but scales eps in place (the training loop's target changes)."""
    alpha_bar = np.cumprod(1.0 - betas)[t][:, None]
    eps *= np.sqrt(1.0 - alpha_bar)
    return np.sqrt(alpha_bar) * x0 + eps


def q_cumprod_from_one(x0, t, betas, eps):
    """np.cumprod(1 - betas[1:]) indexed with t: alpha_bar shifted one step (and t = T out of range)."""
    alpha_bar = np.cumprod(1.0 - betas[1:])[t][:, None]
    return np.sqrt(alpha_bar) * x0 + np.sqrt(1.0 - alpha_bar) * eps


# -- 8. reverse_step --------------------------------------------------------------------------------

def reverse_in_place(x_t, t, eps_pred, betas, z):
    """Right values, but updates x_t in place (the sampler's kept chains change)."""
    alpha_bars = np.cumprod(1.0 - betas)
    x_t -= betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred
    x_t /= np.sqrt(1.0 - betas[t])
    x_t += np.sqrt((1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t]) * betas[t]) * z
    return x_t


def reverse_variance_inverted(x_t, t, eps_pred, betas, z):
    """The posterior variance's fraction upside down."""
    alpha_bars = np.cumprod(1.0 - betas)
    mean = (x_t - betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred) / np.sqrt(1.0 - betas[t])
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (1.0 - alpha_bars[t]) / (1.0 - alpha_bars[t - 1]) * betas[t]
    return mean + np.sqrt(var) * z


def reverse_bar_previous_step(x_t, t, eps_pred, betas, z):
    """alpha_bar_{t-1} in the eps coefficient (off by one step)."""
    alpha_bars = np.cumprod(1.0 - betas)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (x_t - betas[t] / np.sqrt(1.0 - alpha_bars[t - 1]) * eps_pred) / np.sqrt(1.0 - betas[t])
    var = (1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t]) * betas[t]
    return mean + np.sqrt(var) * z


def reverse_noise_always_beta_at_end(x_t, t, eps_pred, betas, z):
    """Adds noise of std sqrt(beta_t) at the last step, where the posterior variance is 0."""
    alpha_bars = np.cumprod(1.0 - betas)
    mean = (x_t - betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred) / np.sqrt(1.0 - betas[t])
    var = (1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t]) * betas[t] if t > 1 else betas[t]
    return mean + np.sqrt(var) * z


MUTANTS = [
    ("reparameterise", "draws its own noise instead of using eps", reparam_own_noise),
    ("reparameterise", "scales eps in place", reparam_in_place),
    ("reparameterise", "sqrt of the log-variance as sigma", reparam_sqrt_logvar),
    ("kl_divergence", "the -1 inside the sum is missing", kl_no_minus_one),
    ("kl_divergence", "sums over the batch axis", kl_axis0),
    ("kl_divergence", "mu instead of mu^2", kl_mu_not_squared),
    ("elbo", "an epsilon inside the log instead of the stable form", elbo_epsilon_in_log),
    ("elbo", "np.log1p(np.exp(a)) overflows", elbo_log1p_exp),
    ("elbo", "the KL without its 1/2", elbo_kl_without_half),
    ("elbo", "the KL term is missing", elbo_no_kl),
    ("discriminator_loss", "the fakes get the label 'real'", disc_fakes_as_real),
    ("discriminator_loss", "np.log1p(np.exp(a)) overflows", disc_log1p_exp),
    ("generator_loss", "an epsilon inside the log", gen_epsilon_in_log),
    ("noise_schedule", "linspace over T + 1 values, first set to 0", schedule_linspace_T_plus_1),
    ("noise_schedule", "betas from 0, beta_1 ignored", schedule_from_zero),
    ("q_sample", "alpha_bar without [:, None]", q_no_new_axis),
    ("q_sample", "scales eps in place", q_in_place),
    ("q_sample", "cumprod of betas[1:] indexed with t", q_cumprod_from_one),
    ("reverse_step", "updates x_t in place", reverse_in_place),
    ("reverse_step", "the posterior variance's fraction inverted", reverse_variance_inverted),
    ("reverse_step", "alpha_bar_{t-1} in the eps coefficient", reverse_bar_previous_step),
    ("reverse_step", "noise of variance beta_1 at the last step", reverse_noise_always_beta_at_end),
]
