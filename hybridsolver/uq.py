"""Ensemble statistics and scores for uncertainty quantification.

Ensembles have the member axis first, ``(M, ...)``; a truth (verifying field) has the
shape of one member, ``(...)``.  Scores are computed per point and returned with the
member axis removed, so callers average over space, time or cases as they need.

- :func:`ensemble_mean`, :func:`ensemble_std` (unbiased, ddof = 1), :func:`quantiles`;
- :func:`crps`: the continuous ranked probability score of the empirical ensemble
  distribution, ``E|X - y| - E|X - X'| / 2``, with the *fair* estimator of Ferro (2014)
  by default (``E|X - X'|`` over distinct pairs, ``1 / (M (M - 1))``), which is unbiased
  for the score of the distribution the members are drawn from; computed from sorted
  members in O(M log M) per point;
- :func:`spread_skill`: ``sqrt((M + 1)/M) * spread / RMSE(ensemble mean)``, with spread
  the root mean ensemble variance: 1 in expectation for an ensemble whose members and
  truth are exchangeable (the factor corrects the finite-ensemble mean's own error);
- :func:`rank_histogram`: counts of the truth's rank among the members (M + 1 bins);
- :func:`coverage`: whether the truth lies inside the members' central predictive
  interval (95% by default), per point;
- :func:`spectral_band`: ensemble mean and quantile band of spectra (M, nk);
- :func:`autocorrelation`: temporal autocorrelation of series (..., time) by lag;
- :func:`wasserstein1`: 1-D Wasserstein distance of the empirical distributions of two
  sets of values (marginals of field values);
- :func:`spectral_rmse`: RMSE between two spectra (of their logarithms with ``log``).
"""
import numpy as np


def ensemble_mean(ensemble):
    """Mean over members: (M, ...) -> (...)."""
    return np.mean(ensemble, axis=0)


def ensemble_std(ensemble):
    """Unbiased ensemble standard deviation (ddof = 1): (M, ...) -> (...)."""
    return np.std(ensemble, axis=0, ddof=1)


def quantiles(ensemble, q):
    """Ensemble quantiles (linear interpolation): (M, ...) -> (len(q), ...)."""
    return np.quantile(ensemble, q, axis=0)


def crps(ensemble, truth, fair=True):
    """CRPS per point, (M, ...) and (...) -> (...); ``fair`` uses 1/(M(M-1)) for the
    members' mean pair distance (1/M^2 otherwise, the empirical distribution's CRPS).

    With the members sorted, ``sum_{i,j} |x_i - x_j| = 2 sum_k (2k - M + 1) x_(k)``
    (k = 0 .. M-1).
    """
    x = np.sort(np.asarray(ensemble, dtype=np.float64), axis=0)
    M = x.shape[0]
    if M < 2 and fair:
        raise ValueError("the fair CRPS needs at least 2 members")
    skill = np.mean(np.abs(x - truth), axis=0)
    weights = (2 * np.arange(M) - M + 1).reshape((M,) + (1,) * (x.ndim - 1))
    pair_sum = 2 * np.sum(weights * x, axis=0)
    return skill - pair_sum / (2 * M * (M - 1) if fair else 2 * M * M)


def spread_skill(ensemble, truth, axis=None):
    """Spread-skill ratio ``sqrt((M+1)/M) sqrt(mean var) / sqrt(mean (mean - truth)^2)``,
    the means taken over ``axis`` of the per-point values (all points by default)."""
    ensemble = np.asarray(ensemble, dtype=np.float64)
    M = ensemble.shape[0]
    variance = np.var(ensemble, axis=0, ddof=1)
    error = (ensemble_mean(ensemble) - truth) ** 2
    return np.sqrt((M + 1) / M) * np.sqrt(np.mean(variance, axis=axis) / np.mean(error, axis=axis))


def rank_histogram(ensemble, truth):
    """Counts (M + 1,) of the truth's rank: the number of members below it, per point."""
    ensemble = np.asarray(ensemble)
    ranks = np.sum(ensemble < truth, axis=0)
    return np.bincount(np.ravel(ranks), minlength=ensemble.shape[0] + 1)


def coverage(ensemble, truth, level=0.95):
    """1.0 where ``truth`` (...) lies inside the central ``level`` interval of the members
    (M, ...), the quantiles (1 - level)/2 and (1 + level)/2 (linear interpolation), else
    0.0: (...); its mean is the fraction of points covered (``level`` for a calibrated
    ensemble)."""
    low, high = quantiles(ensemble, (0.5 * (1 - level), 0.5 * (1 + level)))
    return ((truth >= low) & (truth <= high)).astype(np.float64)


def spectral_band(spectra, q=(0.05, 0.95)):
    """(mean, low, high) over members of spectra (M, ..., nk): the ensemble mean and the
    ``q`` quantiles, each (..., nk)."""
    low, high = quantiles(spectra, q)
    return ensemble_mean(spectra), low, high


def autocorrelation(series, max_lag):
    """Autocorrelation of series (..., T) at lags 0 .. max_lag, (..., max_lag + 1): the
    lagged covariance over the overlapping part, divided by the variance (mean removed)."""
    x = np.asarray(series, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    T = x.shape[-1]
    if max_lag >= T:
        raise ValueError(f"max_lag {max_lag} needs more than {T} times")
    variance = np.mean(x * x, axis=-1)
    return np.stack([np.mean(x[..., :T - lag] * x[..., lag:], axis=-1) / variance for lag in range(max_lag + 1)],
                    axis=-1)


def wasserstein1(a, b):
    """1-D Wasserstein distance between the empirical distributions of the values of
    ``a`` and ``b`` (any shapes): the integral of |F_a - F_b| over the values."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, values[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, values[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(values)))


def spectral_rmse(spectrum, reference, log=False):
    """RMSE over wavenumbers (last axis) between spectra, of their log10 with ``log``."""
    s, r = np.asarray(spectrum, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if log:
        s, r = np.log10(s), np.log10(r)
    return np.sqrt(np.mean((s - r) ** 2, axis=-1))
