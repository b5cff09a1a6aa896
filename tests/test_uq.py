"""Ensemble scores: CRPS against brute force and the Gaussian closed form, spread-skill
and rank histograms of calibrated and under-dispersive ensembles, and the distances."""
import math

import numpy as np
import pytest
from scipy import stats

from hybridsolver import uq


def brute_force_crps(ensemble, truth, fair):
    """O(M^2) per point: mean |x_i - y| - sum_{i,j} |x_i - x_j| / (2 M (M - 1)) (fair) or / (2 M^2)."""
    M = ensemble.shape[0]
    out = np.zeros(truth.shape)
    for index in np.ndindex(truth.shape):
        x = ensemble[(slice(None),) + index]
        pairs = sum(abs(a - b) for a in x for b in x)
        out[index] = np.mean(np.abs(x - truth[index])) - pairs / (2 * M * (M - 1) if fair else 2 * M * M)
    return out


@pytest.mark.parametrize("fair", [True, False])
def test_crps_matches_the_brute_force_estimator(fair):
    rng = np.random.default_rng(0)
    ensemble, truth = rng.standard_normal((7, 5, 4)) * 3 + 1, rng.standard_normal((5, 4))
    assert np.abs(uq.crps(ensemble, truth, fair) - brute_force_crps(ensemble, truth, fair)).max() < 1e-12


def test_fair_crps_is_unbiased_for_the_gaussian_closed_form():
    """Members from N(0, s^2): the fair CRPS averaged over 20000 cases of 4 members equals
    s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = y/s, within 5 standard errors; the
    plain estimator is biased upward by E|X - X'|/(2M) = s/(M sqrt(pi)) and is not."""
    rng = np.random.default_rng(1)
    s, y, cases, M = 2.0, 1.5, 20000, 4
    members = s * rng.standard_normal((M, cases))
    z = y / s
    exact = s * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))
    fair = uq.crps(members, np.full(cases, y))
    plain = uq.crps(members, np.full(cases, y), fair=False)
    standard_error = fair.std() / math.sqrt(cases)
    assert abs(fair.mean() - exact) < 5 * standard_error
    assert abs(plain.mean() - exact - s / (M * math.sqrt(math.pi))) < 5 * standard_error


def exchangeable(spread_factor, M=8, points=40000, seed=2):
    """Truth and M members drawn from N(mu, sigma^2) with random mu, sigma per point;
    the members' deviations scaled by ``spread_factor`` (1: calibrated)."""
    rng = np.random.default_rng(seed)
    mu, sigma = rng.standard_normal(points), rng.uniform(0.5, 2.0, points)
    truth = mu + sigma * rng.standard_normal(points)
    members = mu + spread_factor * sigma * rng.standard_normal((M, points))
    return members, truth


def test_spread_skill_of_a_calibrated_ensemble_is_one_within_sampling_error():
    """Tolerance 0.02: about 5 standard errors of the ratio at 40000 points (the mean
    squared error of the ensemble mean has relative standard error sqrt(2/40000) = 0.7%,
    i.e. 0.35% on the ratio, and the spread's is smaller)."""
    members, truth = exchangeable(1.0)
    assert abs(uq.spread_skill(members, truth) - 1.0) < 0.02
    under, truth = exchangeable(0.5)
    assert uq.spread_skill(under, truth) < 0.7


def test_rank_histogram_is_flat_for_a_calibrated_ensemble_and_u_shaped_otherwise():
    members, truth = exchangeable(1.0)
    counts = uq.rank_histogram(members, truth)
    assert counts.sum() == truth.size and len(counts) == members.shape[0] + 1
    assert stats.chisquare(counts).pvalue > 1e-3
    under, truth = exchangeable(0.5)
    counts = uq.rank_histogram(under, truth)
    assert min(counts[0], counts[-1]) > 2 * counts[len(counts) // 2]


def test_coverage_of_a_calibrated_ensemble_is_its_level_and_less_when_under_dispersed():
    """The truth and the members exchangeable: its rank is uniform on 0..M, and the
    central interval between the interpolated 2.5% and 97.5% quantiles of M = 64 members
    holds it with probability (M - 1) 0.95 / (M + 1) = 0.921 (the interval's expected
    coverage; 40000 points: standard error 0.0014)."""
    members, truth = exchangeable(1.0, M=64)
    assert abs(uq.coverage(members, truth).mean() - 0.95 * 63 / 65) < 0.007
    under, truth = exchangeable(0.5, M=64)
    assert uq.coverage(under, truth).mean() < 0.7


def test_wasserstein_matches_scipy_and_shifts():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 30)), rng.gamma(2.0, size=517)
    assert abs(uq.wasserstein1(a, b) - stats.wasserstein_distance(a.ravel(), b)) < 1e-12
    assert abs(uq.wasserstein1(a, a + 0.7) - 0.7) < 1e-12


def test_autocorrelation_of_an_ar1_process_decays_geometrically():
    rng = np.random.default_rng(4)
    phi, T = 0.8, 200000
    x = np.zeros(T)
    noise = rng.standard_normal(T)
    for t in range(1, T):
        x[t] = phi * x[t - 1] + noise[t]
    rho = uq.autocorrelation(x, 5)
    assert rho[0] == pytest.approx(1.0) and np.abs(rho - phi ** np.arange(6)).max() < 0.02


def test_moments_quantiles_bands_and_spectral_rmse():
    rng = np.random.default_rng(5)
    ensemble = rng.standard_normal((50, 3, 16)) + 2.0
    assert np.allclose(uq.ensemble_mean(ensemble), ensemble.sum(axis=0) / 50)
    deviations = ensemble - ensemble.mean(axis=0)
    assert np.allclose(uq.ensemble_std(ensemble), np.sqrt((deviations**2).sum(axis=0) / 49))
    mean, low, high = uq.spectral_band(np.abs(ensemble), (0.1, 0.9))
    assert np.all(low <= mean) and np.all(mean <= high) and low.shape == (3, 16)
    assert np.allclose((np.abs(ensemble) <= high).mean(axis=0), 0.9, atol=0.03)
    assert uq.spectral_rmse(np.full(8, 100.0), np.full(8, 10.0), log=True) == pytest.approx(1.0)
    assert uq.spectral_rmse(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(math.sqrt(2.0))
