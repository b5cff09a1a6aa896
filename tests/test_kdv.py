"""kdv physics: exact solitons with spectral ETDRK4, its order, invariants of a two-soliton
collision, the paper's finite-difference system against a peer integrator, its RK4
stability bound, member independence, and case errors."""
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from hybridsolver import CaseError, Simulation

NU, L, N = 0.02, 10.0, 1000


def kdv_case(discretization="spectral", scheme="etdrk4", dt=5e-4, members=1, n=N):
    return {"equation": {"name": "kdv", "viscosity": NU, "discretization": discretization},
            "grid": {"shape": [n], "length": [L]},
            "initial_condition": {"type": "random_packet", "amplitude": [2.0, 0.01], "width": [1.0, 0.01],
                                  "center": [7.5], "wavenumber": math.pi},
            "time": {"scheme": scheme, "dt": dt, "t_end": 1.0}, "ensemble": {"members": members}}


def soliton(x, t, c, x0):
    """3c sech^2(sqrt(c/nu)/2 (x - ct - x0)), wrapped to the nearest periodic image."""
    xi = (x - c * t - x0 + L / 2) % L - L / 2
    return 3 * c / np.cosh(0.5 * math.sqrt(c / NU) * xi) ** 2


def spectral_derivative(u, order):
    k = 2 * np.pi * np.fft.rfftfreq(len(u), L / len(u))
    return np.fft.irfft((1j * k) ** order * np.fft.rfft(u), n=len(u))


C, X0 = 2.0, 5.0  # 3c = 6, half-width 2 sqrt(nu/c) = 0.2; one crossing of the box takes L/c = 5


def test_soliton_is_exact_and_its_tails_are_below_round_off():
    """The residual of the soliton in u_t + u u_x + nu u_xxx (u_t = -c u_x) is round-off,
    and at the box edges, L/2 from the peak, it is below round-off of its peak."""
    x = np.arange(N) * L / N
    u = soliton(x, 0.0, C, X0)
    u_x, u_xxx = spectral_derivative(u, 1), spectral_derivative(u, 3)
    residual = -C * u_x + u * u_x + NU * u_xxx
    assert np.abs(residual).max() < 1e-9 * np.abs(u * u_x).max()
    assert soliton(np.array([X0 + L / 2]), 0.0, C, X0)[0] < 1e-16 * 3 * C


def run_soliton(dt, t_end=L / C):
    sim = Simulation.from_case(kdv_case(dt=dt))
    x = sim.grid.x
    sim.set_initial({"u": soliton(x, 0.0, C, X0)})
    sim.advance(round(t_end / dt))
    exact = soliton(x, sim.time, C, X0)
    return np.linalg.norm(sim.fields()["u"][0] - exact) / np.linalg.norm(exact)


def test_etdrk4_soliton_after_one_domain_crossing():
    assert run_soliton(5e-4) < 1e-6


def test_etdrk4_is_fourth_order_in_dt():
    """Errors at t = 1 for dt = 1e-3 ... 1.25e-4 (measured: 6.0e-7 to 1.1e-10); the
    observed orders approach 4 from above (4.24, 4.14, 4.07)."""
    errors = [run_soliton(dt, t_end=1.0) for dt in (1e-3, 5e-4, 2.5e-4, 1.25e-4)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all((orders > 3.8) & (orders < 4.5)) and abs(orders[-1] - 4) < 0.15, (errors, orders)


def test_two_soliton_collision_conserves_the_invariants():
    """A fast soliton (c = 2) overtakes a slow one (c = 0.5); mass, energy and the
    Hamiltonian of the dealiased spectral system stay constant to < 1e-8 relative (the
    drift is ETDRK4's time error: 1e-8 at dt = 5e-4, 3.5e-10 here)."""
    sim = Simulation.from_case(kdv_case(dt=2.5e-4))
    x = sim.grid.x
    sim.set_initial({"u": soliton(x, 0.0, 2.0, 2.0) + soliton(x, 0.0, 0.5, 5.0)})
    before = np.array(sim.equation.invariants(sim.fields()["u"]))[:, 0]
    peaks = []
    for _ in range(8):  # to t = 4; they meet near t = 2
        sim.advance(2000)
        u = sim.fields()["u"][0]
        peaks.append(u.max())
    after = np.array(sim.equation.invariants(sim.fields()["u"]))[:, 0]
    assert min(peaks) < 5.5 < peaks[-1]  # the tall soliton's peak dipped in the collision and came back
    assert np.all(np.abs(after - before) <= 1e-8 * np.abs(before)), (before, after)


def fd_rhs(t, u, dx=L / N):
    up1, um1, up2 = np.roll(u, -1), np.roll(u, 1), np.roll(u, -2)
    return -u * (up1 - um1) / (2 * dx) - NU * (up2 - 3 * up1 + 3 * u - um1) / dx**3


def test_finite_difference_system_matches_a_peer_integrator():
    """Our RK4 on the paper's FD system equals scipy's DOP853 (rtol 1e-11) on the same
    right-hand side, written independently with numpy, at every snapshot."""
    sim = Simulation.from_case(kdv_case("finite_difference", "rk4", dt=1e-3 / 64))
    u0 = sim.fields()["u"][0]
    times = np.arange(1, 21) * 1e-3
    with np.errstate(over="ignore", invalid="ignore"):  # DOP853 tries (and rejects) unstable steps
        peer = solve_ivp(fd_rhs, (0, times[-1]), u0, method="DOP853", t_eval=times, rtol=1e-11, atol=1e-11).y.T
    ours = []
    for _ in times:
        sim.advance(64)
        ours.append(sim.fields()["u"][0])
    assert np.abs(np.array(ours) - peer).max() < 1e-8
    assert np.abs(peer[-1] - u0).max() > 1e-2  # the field moved


@pytest.mark.parametrize("factor,bounded", [(0.95, True), (1.1, False)])
def test_rk4_stability_bound_of_the_finite_difference_system(factor, bounded):
    """The documented bound dt <= 2.785 dx^3 / (8 nu): small noise stays bounded just
    below it and grows just above it (the stiffest mode is the grid's Nyquist mode)."""
    dx = L / N
    sim = Simulation.from_case(kdv_case("finite_difference", "rk4", dt=factor * 2.785 * dx**3 / (8 * NU)))
    sim.set_initial({"u": 1e-6 * np.random.default_rng(0).standard_normal(N)})
    sim.advance(3000)
    growth = np.abs(sim.fields()["u"]).max() / 1e-6
    assert (growth < 10) == bounded, growth


@pytest.mark.parametrize("discretization,scheme,dt", [("spectral", "etdrk4", 1e-3),
                                                       ("finite_difference", "rk4", 1e-3 / 64)])
def test_a_member_is_independent_of_the_ensemble_size(discretization, scheme, dt):
    together = Simulation.from_case(kdv_case(discretization, scheme, dt, members=3))
    alone = Simulation.from_case(kdv_case(discretization, scheme, dt), {"ensemble.first_member": 2})
    for sim in (together, alone):
        sim.advance(100)
    assert np.array_equal(together.fields()["u"][2], alone.fields()["u"][0])
    assert not np.array_equal(together.fields()["u"][1], together.fields()["u"][2])


def test_initial_condition_draws_the_papers_amplitude_and_width():
    """u(x, 0) = a cos(pi x) exp(-(x - 7.5)^2 / s^2): a and s recovered from the field have
    the stated means and variances over 400 members (a ~ N(2, 0.01), s ~ N(1, 0.01))."""
    sim = Simulation.from_case(kdv_case("finite_difference", "rk4", members=400, n=200))
    u, x = sim.fields()["u"], sim.grid.x
    assert x[160] == 8.0 and x[180] == 9.0  # cos(pi x) = 1 and -1 there
    s2 = -2.0 / np.log(-u[:, 180] / u[:, 160])  # u(9) / u(8) = -exp(-2/s^2)
    a, s = u[:, 160] * np.exp(0.25 / s2), np.sqrt(s2)
    assert abs(a.mean() - 2.0) < 0.02 and abs(a.var() - 0.01) < 0.003, (a.mean(), a.var())
    assert abs(s.mean() - 1.0) < 0.02 and abs(s.var() - 0.01) < 0.003, (s.mean(), s.var())


@pytest.mark.parametrize("overrides,key", [
    ({"time.scheme": "etdrk4", "equation.discretization": "finite_difference"}, "time.scheme"),
    ({"time.scheme": "rk4"}, "time.scheme"),
    ({"grid.shape": [64, 64]}, "grid.shape"),
    ({"grid.dealias": "exponential"}, "grid.dealias"),
    ({"equation.discretization": "galerkin"}, "equation.discretization"),
    ({"initial_condition.center": [7.5, 1.0]}, "initial_condition.center"),
])
def test_bad_kdv_cases_name_the_key(overrides, key):
    with pytest.raises(CaseError, match=key.replace(".", r"\.")):
        Simulation.from_case(kdv_case(), overrides)
