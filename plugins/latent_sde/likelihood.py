"""The product-of-experts likelihood of the multiscale latent-SDE model (Ilersich & Nair).

Two Gaussian experts explain an observation y (n_y values per snapshot): the macroscale
expert N(y | m, Sigma_zeta) with m = T_p(zeta), and the microscale expert
N(y - m | d, Sigma_eta) with d = D(eta).  Their normalised product is one Gaussian,

    p(y | zeta, eta) = N(y | mu_y, Sigma_y),
    Sigma_y = (S_zeta + S_eta)^-1,   mu_y = m + Sigma_y S_eta d,

S = Sigma^-1, every covariance diagonal (one variance per pixel).  Without a microscale
latent (n_eta = 0, the implicit-scale model) the likelihood is the macroscale expert
alone.  Tensors broadcast over leading batch axes; variances are positive.
"""
import math

import torch


def combine(m, var_zeta, d=None, var_eta=None):
    """``(mu_y, var_y)`` of the product of the experts: ``m``, ``d`` (..., n_y) the two
    means (``d`` None: the macroscale expert alone), ``var_zeta``, ``var_eta`` their
    diagonal variances (broadcastable to ``m``)."""
    if d is None:
        return m, var_zeta.expand_as(m)
    var_y = var_zeta * var_eta / (var_zeta + var_eta)
    return m + var_zeta / (var_zeta + var_eta) * d, var_y


def gaussian_log_density(y, mean, var):
    """log N(y | mean, diag(var)) summed over the last axis, (...)."""
    return -0.5 * (((y - mean) ** 2 / var) + torch.log(var) + math.log(2 * math.pi)).sum(-1)


def log_likelihood(y, m, var_zeta, d=None, var_eta=None):
    """log p(y | zeta, eta) of the product of experts (:func:`combine`), (...)."""
    mean, var = combine(m, var_zeta, d, var_eta)
    return gaussian_log_density(y, mean, var)
