"""burgers2d physics: du/dt = -(u_x + u_y) u + nu lap(u) by central differences.

Manufactured solution (Dirichlet walls, space and time orders), Cole-Hopf solutions of the
periodic variant, stability of the shipped case, walls, member independence, case errors.
"""
import pathlib

import numba
import numpy as np
import pytest

from hybridsolver import CaseError, Simulation
from hybridsolver.hooks import Hook

SHIPPED_CASE = pathlib.Path(__file__).resolve().parents[1] / "cases" / "burgers2d.toml"
PI = np.pi


def burgers_case(n, dt, viscosity=0.05, boundary="dirichlet", scheme="heun", members=1):
    """A raw burgers2d case on n x n points of [0, 1]^2 (the paper's random packet)."""
    return {
        "equation": {"name": "burgers2d", "viscosity": viscosity, "boundary": boundary},
        "grid": {"shape": [n, n], "length": [1.0, 1.0]},
        "initial_condition": {"type": "random_packet", "amplitude": [1.0, 0.01], "width": [0.2, 1e-4],
                              "center": [0.3, 0.3]},
        "time": {"scheme": scheme, "dt": dt, "steps": 1},
        "ensemble": {"members": members, "seed": 0},
    }


@pytest.fixture
def one_thread():
    """Run numba kernels on one thread: these grids are so small that a parallel launch costs
    more than the work, and much more when the 2 cores are shared (2 ms a step instead of
    0.4 ms on 33^2 here)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(threads)


def orders(errors):
    errors = np.asarray(errors)
    return np.log2(errors[:-1] / errors[1:])


# ---- 1. manufactured solution with Dirichlet walls ----------------------------------------

MMS_NU = 0.05


def manufactured_run(n, dt, t_end, frozen_source=False):
    """u at t_end (ny, nx) for u_e = sin(pi x) sin(pi y) (1 + sin(2 pi t)/2) with its source,
    and u_e there.  ``frozen_source``: the source is evaluated at the step's start time for
    every stage (what a host without stage-time sources would do)."""
    sim = Simulation.from_case(burgers_case(n, dt, MMS_NU))
    X, Y = sim.grid.mesh()
    A = np.sin(PI * X) * np.sin(PI * Y)  # u_e = A T(t)
    A[[0, -1], :] = A[:, [0, -1]] = 0.0  # exactly 0 on the walls (sin(pi) = 1.2e-16), as are u_e and S
    B = A * PI * (np.cos(PI * X) * np.sin(PI * Y) + np.sin(PI * X) * np.cos(PI * Y))  # (A_x + A_y) A
    T = lambda t: 1 + 0.5 * np.sin(2 * PI * t)  # noqa: E731
    dT = lambda t: PI * np.cos(2 * PI * t)  # noqa: E731
    # S = du_e/dt + (du_e/dx + du_e/dy) u_e - nu lap(u_e), lap(A) = -2 pi^2 A
    S = lambda t: A * dT(t) + B * T(t) ** 2 + 2 * MMS_NU * PI**2 * A * T(t)  # noqa: E731
    sim.set_initial({"u": A * T(0.0)})
    if frozen_source:
        sim.set_source(lambda t, out: out.__iadd__(S(sim.time)))  # sim.time: the step's start
    else:
        sim.set_source(lambda t, out: out.__iadd__(S(t)))
    steps = round(t_end / dt)
    sim.advance(steps)
    assert sim.time == pytest.approx(t_end)
    return sim.fields()["u"][0], A * T(sim.time)


def test_manufactured_solution_converges_at_second_order_in_space(one_thread):
    """dt = 5e-4 (the time error is ~1e-3 of the space error), n = 17, 33, 65 at t = 0.25."""
    errors = []
    for n in (17, 33, 65):
        u, exact = manufactured_run(n, 5e-4, 0.25)
        assert np.all(u[[0, -1], :] == 0) and np.all(u[:, [0, -1]] == 0)
        errors.append(np.abs(u - exact).max())
    p = orders(errors)
    print(f"MMS space: max errors {errors}, observed orders {p}")
    assert np.all((p >= 1.8) & (p <= 2.2)), p
    assert errors[-1] < 4e-4  # measured 2.6e-4 (u_e is 1.5 at its peak)


def test_manufactured_solution_converges_at_second_order_in_time(one_thread):
    """Self-convergence on 33^2 for dt = 1/256 ... 1/2048 to t = 0.25; the same with the
    source frozen at each step's start is first order, so the check needs the source at
    the stage times."""
    dts = [1 / 256 / 2**k for k in range(4)]
    diffs = {}
    for frozen, (low, high) in ((False, (1.8, 2.2)), (True, (0.8, 1.2))):
        runs = [manufactured_run(33, dt, 0.25, frozen)[0] for dt in dts]
        diffs[frozen] = [np.abs(a - b).max() for a, b in zip(runs, runs[1:])]
        p = orders(diffs[frozen])
        print(f"MMS time (frozen source: {frozen}): successive differences {diffs[frozen]}, observed orders {p}")
        assert np.all((p >= low) & (p <= high)), (frozen, p)
    # stage-time sources: differences ~400x below the frozen ones at the same dt
    assert diffs[False][-1] < 0.05 * diffs[True][-1]


# ---- 2. Cole-Hopf solutions of the periodic variant -----------------------------------------

CH_NU, CH_A0, CH_A1 = 0.02, 1.0, 0.8


def cole_hopf(s, t):
    """u = w/2 with w = -2 mu phi_s / phi, phi = a0 + a1 exp(-mu k^2 t) cos(k s), mu = 2 nu,
    k = 2 pi: the exact u(x, y, t) = v(x + y, t) of the periodic burgers2d host."""
    mu, k = 2 * CH_NU, 2 * PI
    e = CH_A1 * np.exp(-mu * k**2 * t)
    return mu * k * e * np.sin(k * s) / (CH_A0 + e * np.cos(k * s))


def cole_hopf_run(n, dt=5e-4, t_end=0.5):
    sim = Simulation.from_case(burgers_case(n, dt, CH_NU, boundary="periodic"))
    X, Y = sim.grid.mesh()
    assert sim.grid.dx == 1 / n and X[0, -1] == pytest.approx(1 - 1 / n)  # no duplicated endpoint
    sim.set_initial({"u": cole_hopf(X + Y, 0.0)})
    sim.advance(round(t_end / dt))
    return sim.fields()["u"][0], cole_hopf(X + Y, sim.time)


def test_periodic_variant_matches_cole_hopf_at_second_order(one_thread):
    """nu = 0.02, a1/a0 = 0.8: max|u| = 0.33 at t = 0 and 0.10 at t = 0.5; dt = 5e-4."""
    errors, shifts = [], []
    for n in (16, 32, 64):
        u, exact = cole_hopf_run(n)
        errors.append(np.abs(u - exact).max())
        # u[i, j] == u[i + 1, j - 1]: still a function of x + y
        shifts.append(np.abs(u - np.roll(u, (-1, 1), axis=(0, 1))).max())
    p = orders(errors)
    print(f"Cole-Hopf: max|u| {np.abs(exact).max():.3f}, max errors {errors}, observed orders {p}, "
          f"max |u(x, y) - u(x - dx, y + dy)| {shifts}")
    assert np.abs(exact).max() > 0.09
    assert np.all((p >= 1.8) & (p <= 2.2)), p
    assert errors[-1] < 5e-4  # measured 3.4e-4
    assert max(shifts) < 1e-13


# ---- 3. stability of the shipped case ---------------------------------------------------------

def heun_amplification(dt, dx, dy, nu, a, b, U):
    """|1 + z + z^2/2| for the central stencil's eigenvalue z/dt at frozen speed U."""
    z = dt * (-4 * nu * (np.sin(a / 2) ** 2 / dx**2 + np.sin(b / 2) ** 2 / dy**2)
              - 1j * U * (np.sin(a) / dx + np.sin(b) / dy))
    return 1 + z + z**2 / 2


def test_shipped_case_is_von_neumann_stable():
    sim = Simulation.from_case(str(SHIPPED_CASE), {"ensemble.members": 1})
    dt, dx, dy, nu = sim.dt, sim.grid.dx, sim.grid.dy, sim.equation.viscosity
    assert (dt, dx, dy, nu) == (1e-4, 1 / 127, 1 / 127, 0.005)
    a = np.linspace(-PI, PI, 201)[:, None, None]
    b = np.linspace(-PI, PI, 201)[None, :, None]
    U = np.linspace(-1, 1, 9)[None, None, :]
    worst = np.abs(heun_amplification(dt, dx, dy, nu, a, b, U)).max()
    too_large = np.abs(heun_amplification(5e-3, dx, dy, nu, a, b, U)).max()
    print(f"max |G|: {worst} at dt = {dt}, {too_large} at dt = 5e-3")
    assert worst <= 1 + 1e-12
    assert too_large > 1.5


@pytest.mark.parametrize("dt", [1e-4, 5e-3])
def test_heun_amplification_is_the_solvers(dt):
    """One step of the host from u = U + eps cos(a j + b i) on the periodic 127^2 grid (the
    shipped dx = 1/127): the mode's factor equals the von Neumann one used above."""
    U = np.array([-1.0, 0.4, 1.0])
    sim = Simulation.from_case(str(SHIPPED_CASE), {"equation.boundary": "periodic", "grid.shape": [127, 127],
                                                   "ensemble.members": len(U), "time.dt": dt})
    assert sim.grid.dx == 1 / 127
    X, Y = sim.grid.mesh()
    eps = 1e-6
    for p, q in [(1, 0), (5, -3), (40, 20), (63, 63), (63, -63), (20, 63)]:
        theta = 2 * PI * (p * X + q * Y)  # a = 2 pi p / 127 along x, b along y
        sim.set_initial({"u": U[:, None, None] + eps * np.cos(theta)})
        sim.advance(1)
        v = (sim.fields()["u"] - U[:, None, None]) / eps
        measured = 2 * (v * np.exp(-1j * theta)).mean(axis=(1, 2))
        a, b = 2 * PI * p / 127, 2 * PI * q / 127
        expected = heun_amplification(dt, sim.grid.dx, sim.grid.dy, sim.equation.viscosity, a, b, U)
        assert np.abs(measured - expected).max() < 1e-6 * max(1, np.abs(expected).max()), (p, q, measured,
                                                                                          expected)


# ---- 4. Dirichlet walls -------------------------------------------------------------------

def test_walls_stay_zero():
    sim = Simulation.from_case(str(SHIPPED_CASE), {"ensemble.members": 2})
    u0 = sim.fields()["u"]
    # the packet (center (0.3, 0.3), width 0.2) is not small next to the x = 0 and y = 0 walls
    assert np.abs(u0[:, 1:-1, 1]).max() > 0.05 and np.abs(u0[:, 1, 1:-1]).max() > 0.05
    sim.advance(100)
    u = sim.fields()["u"]
    assert not np.array_equal(u, u0)
    for wall in (u[:, 0, :], u[:, -1, :], u[:, :, 0], u[:, :, -1]):
        assert np.all(wall == 0.0)
    assert np.abs(u[:, 1:-1, 1]).max() > 0.05

    sim.set_initial({"u": np.ones((128, 128))})
    u = sim.fields()["u"]
    assert np.all(u[:, [0, -1], :] == 0) and np.all(u[:, :, [0, -1]] == 0)
    assert np.all(u[:, 1:-1, 1:-1] == 1)


class ConstantTendency(Hook):
    callsite = "tendency"

    def __call__(self, sim, state, previous=None):
        return np.ones(state.shape)


@pytest.mark.parametrize("extra", ["source", "hook"])
def test_walls_stay_zero_under_sources_and_tendency_hooks(extra):
    """A right-hand side added by a source or a tendency hook is zeroed on the walls too."""
    sim = Simulation.from_case(burgers_case(16, 1e-3))
    sim.set_initial({"u": np.zeros((16, 16))})
    if extra == "source":
        sim.set_source(lambda t, out: out.__iadd__(1.0))
    else:
        sim.add_hook(ConstantTendency())
    sim.advance(10)
    u = sim.fields()["u"][0]
    assert np.all(u[[0, -1], :] == 0) and np.all(u[:, [0, -1]] == 0)
    assert np.allclose(u[2:-2, 2:-2], 0.01, rtol=1e-2)  # the added 1 acted inside (less near the walls)


# ---- 5. members ---------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["heun", "rk4"])
def test_member_is_independent_of_the_ensemble(scheme):
    case = burgers_case(32, 1e-3, 0.005, scheme=scheme, members=3)
    together = Simulation.from_case(case)
    together.advance(50)
    alone = Simulation.from_case(case, {"ensemble.first_member": 2, "ensemble.members": 1})
    alone.advance(50)
    u, u2 = together.fields()["u"], alone.fields()["u"]
    assert np.all(np.isfinite(u))
    assert not np.array_equal(u[0], u[2])  # members differ (random amplitude and width)
    assert np.array_equal(u[2], u2[0])
    again = Simulation.from_case(case)
    again.advance(50)
    assert np.array_equal(again.fields()["u"], u)


# ---- 6. case errors -----------------------------------------------------------------------

@pytest.mark.parametrize("overrides,key", [
    ({"time.scheme": "etdrk4"}, "time.scheme"),
    ({"time.scheme": "cn_rk4"}, "time.scheme"),
    ({"grid.dealias": "2/3"}, "grid.dealias"),
    ({"equation.boundary": "neumann"}, "equation.boundary"),
    ({"equation.viscosity": -0.01}, "equation.viscosity"),
    ({"equation.forcing": {"type": "none"}}, "equation.forcing"),
    ({"initial_condition.type": "taylor_green"}, "initial_condition.type"),
    ({"initial_condition.center": [0.3]}, "initial_condition.center"),
])
def test_bad_case_key_is_named(overrides, key):
    Simulation.from_case(burgers_case(16, 1e-3))  # the base case is valid
    with pytest.raises(CaseError, match=f"^{key}:"):
        Simulation.from_case(burgers_case(16, 1e-3), overrides)
