"""navier_stokes2d physics: advection term, conservation, exact solutions, orders."""
import copy
import math

import numpy as np
import pytest

from hybridsolver import Simulation, fft


def band_limited_vorticity(n, cutoff, seed=0):
    """Random real vorticity with integer wavenumbers |p|, |q| <= cutoff, (1, n, n)."""
    rng = np.random.default_rng(seed)
    w_hat = np.fft.rfft2(rng.standard_normal((n, n)))
    p = np.arange(n // 2 + 1)[None, :]
    q = np.abs(np.fft.fftfreq(n, 1 / n))[:, None]
    w_hat[(p > cutoff) | (q > cutoff)] = 0
    w_hat[0, 0] = 0
    return np.fft.irfft2(w_hat, s=(n, n))[None]


def unforced(case, n=64, dealias="2/3"):
    case["grid"]["shape"] = [n, n]
    case["grid"]["dealias"] = dealias
    case["equation"]["forcing"] = {"type": "none"}
    return Simulation.from_case(case)


def test_alias_free_band_at_64_points(case):
    band = unforced(case).grid.alias_free_band()
    q = np.abs(np.fft.fftfreq(64, 1 / 64))
    assert band[q <= 20, :21].min() == 1 and band.sum() == 41 * 21


def test_basdevant_term_equals_advective_form(case):
    """-u.grad(omega) from 4 FFTs equals the advective form inside the dealiased band."""
    sim = unforced(case)
    g = sim.grid
    w = band_limited_vorticity(64, 21)
    sim.set_initial({"vorticity": w})
    out = fft.empty(sim.state.shape, np.complex128)
    sim.equation.explicit(sim.state, out)
    kx, ky = np.meshgrid(g.kx, g.ky)
    w_hat = np.fft.rfft2(w[0])
    psi = w_hat * g.inv_k2
    irfft = lambda a: np.fft.irfft2(a, s=g.shape)  # noqa: E731
    u, v = irfft(1j * ky * psi), irfft(-1j * kx * psi)
    advective = -np.fft.rfft2(u * irfft(1j * kx * w_hat) + v * irfft(1j * ky * w_hat))
    assert np.abs(out[0] - advective * g.nonlinear_mask()).max() < 1e-12 * np.abs(advective).max()


@pytest.mark.parametrize("dealias", ["2/3", "none"])
def test_nonlinear_term_conserves_energy_and_enstrophy(case, dealias):
    """sum_k psi* N and sum_k omega* N vanish for a field in the alias-free band."""
    sim = unforced(case, dealias=dealias)
    g = sim.grid
    sim.set_initial({"vorticity": band_limited_vorticity(64, 20, seed=4)})  # the alias-free band
    n_hat = fft.empty(sim.state.shape, np.complex128)
    sim.equation.explicit(sim.state, n_hat)
    w_hat = sim.state[0]
    for conjugate in (w_hat * g.inv_k2, w_hat):  # energy: psi, enstrophy: omega
        terms = g.weight * (np.conj(conjugate) * n_hat[0]).real
        print(f"{dealias}: |sum transfer| / sum |terms| = {abs(terms.sum()) / np.abs(terms).sum():.2e}")
        assert abs(terms.sum()) / np.abs(terms).sum() < 1e-12


def taylor_green_error(case, scheme, dt, t_end=1.0, nu=0.05, mu=0.1):
    case["grid"]["shape"] = [32, 32]
    case["equation"].update(viscosity=nu, drag=mu, forcing={"type": "none"})
    case["initial_condition"] = {"type": "taylor_green", "wavenumber": 2, "amplitude": 3.0}
    case["time"] = {"scheme": scheme, "dt": dt, "steps": round(t_end / dt)}
    sim = Simulation.from_case(case)
    w0 = sim.fields()["vorticity"]
    sim.advance(sim.total_steps)
    exact = w0 * np.exp(-(nu * 8 + mu) * sim.time)
    return np.abs(sim.fields()["vorticity"] - exact).max() / np.abs(w0).max()


def test_taylor_green_is_exact_under_integrating_factor(case):
    assert taylor_green_error(case, "ab3", 0.1) < 1e-13


@pytest.mark.parametrize("scheme", ["cn", "cn_rk4"])
def test_taylor_green_decays_with_crank_nicolson_order_two(case, scheme):
    errors = [taylor_green_error(case, scheme, dt) for dt in (0.1, 0.05, 0.025)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    print(f"Taylor-Green {scheme}: errors {errors}, observed orders {orders}")
    assert errors[-1] < 1e-3
    assert np.all(np.abs(orders - 2) < 0.2), orders


def forced_run(case, scheme, dt, viscosity, drag, t_end, ab3_start=None):
    """Vorticity at t_end of a smooth forced flow on 32^2 (Kolmogorov forcing, low-mode
    random initial velocity).  ``ab3_start``: the states at t = 0, dt, 2 dt from which
    ab3 starts at 2 dt with its history filled."""
    case["grid"]["shape"] = [32, 32]
    case["equation"].update(viscosity=viscosity, drag=drag,
                            forcing={"type": "kolmogorov", "wavenumber": 2, "amplitude": 1.0})
    case["initial_condition"] = {"type": "random_velocity", "peak_wavenumber": 2.0, "max_velocity": 1.0}
    case["time"] = {"scheme": scheme, "dt": dt, "steps": max(1, round(t_end / dt))}
    sim = Simulation.from_case(case)
    steps = round(t_end / dt)
    if ab3_start is not None:
        stepper = sim.stepper
        for buffer, state in zip(stepper.history[1::-1], ab3_start[:2]):  # newest first
            sim.set_initial({"vorticity": state[None]})
            sim.equation.explicit(sim.state, buffer)
        sim.set_initial({"vorticity": ab3_start[2][None]})
        stepper.history_length = 2
        steps -= 2
    sim.advance(steps)
    return sim.fields()["vorticity"][0]


@pytest.mark.parametrize("scheme,order,dts,viscosity,drag", [
    ("cn", 1, (0.02, 0.01, 0.005), 0.0, 0.0),
    ("cn_rk4", 4, (0.1, 0.05, 0.025), 0.0, 0.0),
    ("ab3", 3, (0.02, 0.01, 0.005), 0.0, 0.0),
    ("ab3", 3, (0.02, 0.01, 0.005), 0.02, 0.1),
])
def test_observed_order_on_smooth_forced_flow(case, scheme, order, dts, viscosity, drag):
    """Time-step refinement against a cn_rk4 (inviscid) or ab3 reference at dt = 1/8000.

    ab3's pyqg-style Euler/AB2 start leaves an O(dt^2) error, so its recurrence is
    measured from a primed history: the tendencies at t = 0 and dt of the reference.
    """
    t_end = 1.0
    ref = "cn_rk4" if viscosity == 0 else "ab3"
    reference = forced_run(copy.deepcopy(case), ref, t_end / 8000, viscosity, drag, t_end)
    errors = []
    for dt in dts:
        start = None
        if scheme == "ab3":
            start = [forced_run(copy.deepcopy(case), ref, dt / 200, viscosity, drag, t) for t in (0, dt, 2 * dt)]
        final = forced_run(copy.deepcopy(case), scheme, dt, viscosity, drag, t_end, start)
        errors.append(np.abs(final - reference).max())
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    print(f"{scheme} (nu={viscosity}, mu={drag}): errors {errors}, observed orders {orders}")
    assert np.all(np.abs(orders - order) < 0.2), (errors, orders)


def test_stochastic_increment_has_the_documented_covariance(case):
    """Var(beta dW(x)) = beta^2 dt/|D| sum_{k != 0} exp(-alpha |k|^2) over the grid."""
    case["grid"]["shape"] = [32, 32]
    case["grid"]["length"] = [1.0, 1.0]
    case["ensemble"]["members"] = 64
    beta, alpha, dt = 0.3, 0.002, 1e-3
    case["equation"]["stochastic_forcing"] = {"amplitude": beta, "alpha": alpha}
    case["time"]["dt"] = dt
    sim = Simulation.from_case(case)
    sim.state[...] = 0
    sim.equation.add_noise(sim.state, 0, dt)
    dw = sim.fields()["vorticity"]
    kx, ky = np.meshgrid(2 * np.pi * np.fft.fftfreq(32, 1 / 32), 2 * np.pi * np.fft.fftfreq(32, 1 / 32))
    q = np.exp(-alpha * (kx**2 + ky**2))
    q[0, 0] = 0
    expected = beta**2 * dt * q.sum()
    samples = dw.size
    assert abs(dw.var() / expected - 1) < 5 * math.sqrt(2 / samples) * 10  # correlated points
    assert np.allclose(dw.mean(axis=(1, 2)), 0, atol=1e-15)


@pytest.mark.parametrize("forcing,length,shape", [
    ({"type": "kolmogorov", "wavenumber": 3, "amplitude": 2.0}, [2 * math.pi, 4 * math.pi], [32, 64]),
    ({"type": "diagonal", "wavenumber": 1, "amplitude": 0.1}, [1.0, 2.0], [48, 32]),
    ({"type": "cosine", "wavenumber": 4, "amplitude": 1.0}, [2 * math.pi, 2 * math.pi], [32, 32]),
])
def test_forced_laminar_flow_from_rest_on_a_rectangle(case, forcing, length, shape):
    """A single-wavenumber forcing f drives omega(t) = f (1 - exp(-lam t)) / lam,
    lam = nu |k|^2 + mu, exactly: omega is proportional to psi, so advection vanishes."""
    nu, mu = 0.05, 0.1
    case["equation"].update(viscosity=nu, drag=mu, forcing=forcing)
    case["grid"].update(shape=shape, length=length)
    case["time"] = {"scheme": "cn_rk4", "dt": 0.01, "steps": 100}
    sim = Simulation.from_case(case)
    sim.set_initial({"vorticity": np.zeros(sim.grid.shape)})
    sim.advance(100)
    X, Y = sim.grid.mesh()
    A, n = forcing["amplitude"], forcing["wavenumber"]
    if forcing["type"] == "kolmogorov":
        k2 = (2 * np.pi * n / length[0]) ** 2
        f = -A * np.sqrt(k2) * np.cos(np.sqrt(k2) * Y)
    elif forcing["type"] == "cosine":  # k_f cos(k_f x) + k_f cos(k_f y): one |k| on a square box
        k2 = (2 * np.pi * n / length[0]) ** 2
        f = A * np.sqrt(k2) * (np.cos(np.sqrt(k2) * X) + np.cos(np.sqrt(k2) * Y))
    else:
        k2 = (2 * np.pi * n) ** 2 * (1 / length[0] ** 2 + 1 / length[1] ** 2)
        phase = 2 * np.pi * n * (X / length[1] + Y / length[0])
        f = A * (np.sin(phase) + np.cos(phase))
    lam = nu * k2 + mu
    exact = f * (1 - np.exp(-lam * sim.time)) / lam
    assert np.abs(sim.fields()["vorticity"][0] - exact).max() < 1e-5 * np.abs(exact).max()


def test_without_advection_the_step_is_the_linear_crank_nicolson_map(case):
    """advection = false: w+ = (1 + dt L/2)/(1 - dt L/2) w + dt F(f)/(1 - dt L/2), exactly."""
    case["grid"]["shape"] = [32, 32]
    case["equation"]["advection"] = False
    case["time"]["scheme"] = "cn"
    sim = Simulation.from_case(case)
    w0 = sim.state.copy()
    sim.advance(10)
    eq, dt = sim.equation, sim.dt
    a = (1 + 0.5 * dt * eq.linear) / (1 - 0.5 * dt * eq.linear)
    b = dt / (1 - 0.5 * dt * eq.linear)
    expected = w0.copy()
    for _ in range(10):
        expected = a * expected + b * eq.forcing_hat
    assert np.allclose(sim.state, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    case["equation"]["advection"] = True
    with_advection = Simulation.from_case(case)
    with_advection.advance(10)
    assert not np.allclose(with_advection.state, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("kx, ky", [(3, 2), (1, 5), (-4, 1)])
def test_rossby_wave_propagates_at_the_analytic_rate(case, kx, ky):
    """equation.beta: with nu = mu = 0 and no forcing, omega = A cos(k.x - omega_R t) with
    omega_R = -beta kx / |k|^2 (a plane wave: advection vanishes) after one period."""
    beta, A, steps = 20.0, 0.7, 400
    omega_r = -beta * kx / (kx**2 + ky**2)
    case["equation"].update(viscosity=0.0, drag=0.0, beta=beta, forcing={"type": "none"})
    case["grid"].update(shape=[32, 32], length=[2 * math.pi, 2 * math.pi])
    case["time"] = {"scheme": "etdrk4", "dt": 2 * math.pi / abs(omega_r) / steps, "steps": steps}
    sim = Simulation.from_case(case)
    X, Y = sim.grid.mesh()
    sim.set_initial({"vorticity": A * np.cos(kx * X + ky * Y)})
    sim.advance(steps)
    exact = A * np.cos(kx * X + ky * Y - omega_r * sim.time)
    w = sim.fields()["vorticity"][0]
    assert np.linalg.norm(w - exact) / np.linalg.norm(exact) < 1e-10
    half = copy.deepcopy(case)  # and the wave is not standing: half a period moves it
    half["time"]["steps"] = steps // 2
    other = Simulation.from_case(half)
    other.set_initial({"vorticity": A * np.cos(kx * X + ky * Y)})
    other.advance(steps // 2)
    np.testing.assert_allclose(other.fields()["vorticity"][0], -A * np.cos(kx * X + ky * Y), atol=1e-10)


def test_beta_needs_etdrk4(case):
    from hybridsolver.case import CaseError

    case["equation"]["beta"] = 20.0
    case["time"]["scheme"] = "cn_rk4"
    with pytest.raises(CaseError, match="time.scheme: equation.beta .* only etdrk4"):
        Simulation.from_case(case)
