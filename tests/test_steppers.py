"""ETDRK4 as a general stepper (contour-integral coefficients, exact linear part, fourth
order with stage-time sources, navier_stokes2d) and the equation/scheme pairing."""
import numpy as np
import pytest

from hybridsolver import CaseError, Simulation
from hybridsolver.steppers import phi_coefficients


def closed_forms(z):
    """Q, f1, f2, f3 of Cox & Matthews in closed form (accurate for |z| >~ 1)."""
    ez = np.exp(z)
    return ((np.exp(z / 2) - 1) / z, (-4 - z + ez * (4 - 3 * z + z**2)) / z**3, (2 + z + ez * (z - 2)) / z**3,
            (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3)


def test_phi_coefficients_match_closed_forms_and_their_limits_at_zero():
    z = np.array([-30.0, -3.0, 2.0, 5j, -1 + 40j, -200.0])
    E, E2, *coefficients = phi_coefficients(z)
    assert np.allclose(E, np.exp(z), rtol=1e-14) and np.allclose(E2, np.exp(z / 2), rtol=1e-14)
    for ours, exact in zip(coefficients, closed_forms(z)):
        assert np.allclose(ours, exact, rtol=1e-12, atol=0)
    # z -> 0, where the closed forms cancel catastrophically: Q -> 1/2, f1, f2, f3 -> 1/6
    _, _, Q, f1, f2, f3 = phi_coefficients(np.array([0.0, 1e-9j]))
    assert np.allclose(Q, 0.5, rtol=1e-12) and np.allclose([f1, f2, f3], 1 / 6, rtol=1e-8)


def test_etdrk4_taylor_green_decays_exactly(case):
    """Advection vanishes for Taylor-Green and ETDRK4 integrates the linear part exactly."""
    case["equation"]["forcing"] = {"type": "none"}
    case["initial_condition"] = {"type": "taylor_green", "wavenumber": 2, "amplitude": 2.0}
    case["time"] = {"scheme": "etdrk4", "dt": 0.05, "steps": 40}
    sim = Simulation.from_case(case)
    w0 = sim.fields()["vorticity"]
    sim.advance(40)
    decay = np.exp(-(1e-3 * 8 + 0.1) * sim.time)  # nu |k|^2 + drag, |k|^2 = 2 * 2^2
    assert np.abs(sim.fields()["vorticity"] - decay * w0).max() < 1e-12


def source_run(case, scheme, dt, t_end=1.0):
    """dw/dt = L w + cos(t) g for a Gaussian bump g, from w = 0, and the exact solution
    per mode, ``g (lambda e^{lambda t} - lambda cos t + sin t) / (lambda^2 + 1)``."""
    case["equation"].update({"advection": False, "forcing": {"type": "none"}, "viscosity": 0.05, "drag": 0.5})
    case["time"] = {"scheme": scheme, "dt": dt, "t_end": t_end}
    sim = Simulation.from_case(case)
    X, Y = sim.grid.mesh()
    g_hat = sim.equation.from_fields({"vorticity": np.exp(-((X - 3) ** 2 + (Y - 3) ** 2))[None]})[0]
    sim.set_initial({"vorticity": np.zeros(sim.grid.shape)})
    sim.set_source(lambda t, out: out.__iadd__(np.cos(t) * g_hat))
    sim.advance(round(t_end / dt))
    lam, t = sim.equation.linear, sim.time
    exact = g_hat * (lam * np.exp(lam * t) - lam * np.cos(t) + np.sin(t)) / (lam**2 + 1)
    return np.abs(sim.state[0] - exact).max() / np.abs(exact).max()


def test_etdrk4_with_a_time_dependent_source_is_fourth_order(case):
    """The source is evaluated at the stage times t, t + dt/2, t + dt; a source held at t
    would make the scheme first order."""
    errors = [source_run(dict(case, equation=dict(case["equation"])), "etdrk4", dt) for dt in (0.2, 0.1, 0.05)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all((orders > 3.7) & (orders < 4.4)), (errors, orders)


def test_etdrk4_navier_stokes_converges_at_fourth_order_to_cn_rk4(case):
    """Nonlinear Kolmogorov flow to t = 0.5: ETDRK4 errors against a converged cn_rk4
    reference fall at fourth order."""
    case["time"]["t_end"] = 0.5
    del case["time"]["steps"]

    def run(scheme, dt):
        sim = Simulation.from_case(case, {"time.scheme": scheme, "time.dt": dt})
        sim.advance(round(0.5 / dt))
        return sim.fields()["vorticity"][0]

    reference = run("cn_rk4", 1e-4)
    errors = [np.abs(run("etdrk4", dt) - reference).max() for dt in (0.02, 0.01, 0.005)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(orders > 3.6), (errors, orders)


@pytest.mark.parametrize("name,scheme", [("navier_stokes2d", "heun"), ("navier_stokes2d", "rk4"),
                                         ("qg2layer", "heun")])
def test_explicit_schemes_refuse_spectral_equations(case, name, scheme):
    case["time"]["scheme"] = scheme
    if name == "qg2layer":
        case = {"equation": {"name": "qg2layer"}, "grid": {"shape": [32, 32], "length": [1e6, 1e6]},
                "initial_condition": {"type": "pyqg_random"}, "time": {"scheme": scheme, "dt": 3600.0, "steps": 1}}
    with pytest.raises(CaseError, match=r"time\.scheme: .* is stepped with"):
        Simulation.from_case(case)
