"""Held-out plausible bugs for 10_generative, written from the released text only (the author never read cases.py).
Read by tests/course/test_mutants.py; the grader never reads this folder."""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# --- Exercise 1: reparameterise ------------------------------------------------------------------------------

def reparameterise_by_variance(mu, logvar, eps):
    return mu + np.exp(logvar) * eps                       # sigma^2, not sigma


# --- Exercise 2: kl_divergence -------------------------------------------------------------------------------

def kl_without_half(mu, logvar):
    return np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)


def kl_mean_over_latent(mu, logvar):
    return 0.5 * np.mean(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)


# --- Exercise 3: elbo ------------------------------------------------------------------------------------------

def elbo_summed_over_batch(x, logits, mu, logvar):
    log_px = -np.sum(x * np.logaddexp(0.0, -logits) + (1.0 - x) * np.logaddexp(0.0, logits), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.sum(log_px - kl))


def elbo_plus_kl(x, logits, mu, logvar):
    log_px = -np.sum(x * np.logaddexp(0.0, -logits) + (1.0 - x) * np.logaddexp(0.0, logits), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.mean(log_px + kl))


def elbo_naive_logs(x, logits, mu, logvar):
    p = sigmoid(logits)
    log_px = np.sum(x * np.log(p) + (1.0 - x) * np.log(1.0 - p), axis=1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=1)
    return float(np.mean(log_px - kl))


# --- Exercise 4: discriminator_loss ----------------------------------------------------------------------------

def discriminator_one_mean(real_logits, fake_logits):
    # one mean over all N_r + N_f terms: (sum_r + sum_f) / (N_r + N_f), half the sum of the two means when N_r = N_f
    terms = np.concatenate([np.logaddexp(0.0, -real_logits), np.logaddexp(0.0, fake_logits)])
    return float(np.mean(terms))


def discriminator_naive_logs(real_logits, fake_logits):
    return float(-np.mean(np.log(sigmoid(real_logits))) - np.mean(np.log(1.0 - sigmoid(fake_logits))))


# --- Exercise 5: generator_loss --------------------------------------------------------------------------------

def generator_saturating(fake_logits):
    return float(np.mean(-np.logaddexp(0.0, fake_logits)))   # mean log(1 - D(G(z))): the saturating loss


# --- Exercise 6: noise_schedule --------------------------------------------------------------------------------

def schedule_linspace_T_plus_1(T, beta_1, beta_T):
    betas = np.linspace(beta_1, beta_T, T + 1)              # T + 1 points, then the first overwritten by 0
    betas[0] = 0.0
    alphas = 1.0 - betas
    return betas, alphas, np.cumprod(alphas)


def schedule_endpoint_excluded(T, beta_1, beta_T):
    betas = np.concatenate([[0.0], np.linspace(beta_1, beta_T, T, endpoint=False)])
    alphas = 1.0 - betas
    return betas, alphas, np.cumprod(alphas)


# --- Exercise 7: q_sample --------------------------------------------------------------------------------------

def q_sample_alpha_not_bar(x0, t, betas, eps):
    alpha = (1.0 - betas)[t][:, None]                       # alpha_t, not the product alpha_bar_t
    return np.sqrt(alpha) * x0 + np.sqrt(1.0 - alpha) * eps


def q_sample_in_place(x0, t, betas, eps):
    alpha_bar = np.cumprod(1.0 - betas)[t][:, None]
    x0 *= np.sqrt(alpha_bar)
    x0 += np.sqrt(1.0 - alpha_bar) * eps
    return x0


# --- Exercise 8: reverse_step ----------------------------------------------------------------------------------

def reverse_sigma_is_variance(x_t, t, eps_pred, betas, z):
    alpha_bars = np.cumprod(1.0 - betas)
    mean = (x_t - betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred) / np.sqrt(1.0 - betas[t])
    variance = (1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t]) * betas[t]
    return mean + variance * z                              # sigma_t^2 where sigma_t belongs


def reverse_variance_beta(x_t, t, eps_pred, betas, z):
    alpha_bars = np.cumprod(1.0 - betas)
    mean = (x_t - betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred) / np.sqrt(1.0 - betas[t])
    return mean + np.sqrt(betas[t]) * z                     # sigma_t^2 = beta_t, not the posterior's beta~_t


def reverse_in_place(x_t, t, eps_pred, betas, z):
    alpha_bars = np.cumprod(1.0 - betas)
    x_t -= betas[t] / np.sqrt(1.0 - alpha_bars[t]) * eps_pred
    x_t /= np.sqrt(1.0 - betas[t])
    x_t += np.sqrt((1.0 - alpha_bars[t - 1]) / (1.0 - alpha_bars[t]) * betas[t]) * z
    return x_t


MUTANTS = [
    ("reparameterise", "noise scaled by the variance exp(logvar) instead of the standard deviation",
     reparameterise_by_variance),
    ("kl_divergence", "the factor 1/2 forgotten", kl_without_half),
    ("kl_divergence", "mean over the K latent dimensions instead of the sum", kl_mean_over_latent),
    ("elbo", "summed over the batch instead of averaged", elbo_summed_over_batch),
    ("elbo", "KL added instead of subtracted", elbo_plus_kl),
    ("elbo", "log(sigmoid) and log(1 - sigmoid) computed naively (-inf / nan for large logits)", elbo_naive_logs),
    ("discriminator_loss", "one mean over the real and fake terms together instead of the sum of two means",
     discriminator_one_mean),
    ("discriminator_loss", "log(sigmoid) computed naively (inf for logits of hundreds)", discriminator_naive_logs),
    ("generator_loss", "the saturating loss mean log(1 - D(G(z))) instead of -mean log D(G(z))",
     generator_saturating),
    ("noise_schedule", "linspace with T + 1 points and the first set to 0 (wrong spacing)",
     schedule_linspace_T_plus_1),
    ("noise_schedule", "beta_T excluded (linspace endpoint=False)", schedule_endpoint_excluded),
    ("q_sample", "alpha_t = 1 - beta_t used instead of the cumulative product alpha_bar_t", q_sample_alpha_not_bar),
    ("q_sample", "x0 changed in place (x0 *= ..., x0 += ...)", q_sample_in_place),
    ("reverse_step", "noise scaled by the variance beta~_t instead of its square root", reverse_sigma_is_variance),
    ("reverse_step", "sigma_t^2 = beta_t instead of the posterior variance beta~_t", reverse_variance_beta),
    ("reverse_step", "x_t changed in place (x_t -= ..., x_t /= ..., x_t += ...)", reverse_in_place),
]
