"""The drift residual of the reparametrised, amortised ELBO (Course & Nair; the latent-SDE
paper's appendix E), for diagonal covariances.

The variational posterior of the latent path is Gaussian with mean mu(t) and diagonal
covariance Sigma(t) at every time, the marginals of a linear SDE
dz = (-A z + b) dt + L dbeta.  With the prior SDE dz = gamma(z, t) dt + L dbeta (L
diagonal and constant), the ELBO's path term is -1/2 the time integral of the expected
||r||^2 in the metric (L L^T)^-1, where

    r(z, t) = mu'(t) - B(t) (z - mu(t)) - gamma(z, t),   B = (L^2 / Sigma - Sigma' / Sigma) / 2

(the diagonal case of B = V^-1((Sigma (+) Sigma)^-1 V(L L^T - Sigma'))).  When the prior is
itself linear and the posterior equals its marginals, r vanishes for every z.
"""


def drift_residual(z, mean, mean_dot, var, var_dot, drift, diffusion_var):
    """r(z, t): ``z`` the sampled latent, ``mean``/``mean_dot`` mu and mu', ``var``/``var_dot``
    Sigma and Sigma' (diagonal), ``drift`` gamma(z, t), ``diffusion_var`` L^2 (all
    broadcastable, latent axis last)."""
    b = 0.5 * (diffusion_var - var_dot) / var
    return mean_dot - b * (z - mean) - drift


def residual_energy(residual, diffusion_var):
    """||r||^2 in the metric (L L^T)^-1: sum over the latent axis of r^2 / L^2, (...)."""
    return (residual ** 2 / diffusion_var).sum(-1)
