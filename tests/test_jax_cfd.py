"""Agreement with jax-cfd's spectral ForcedNavierStokes2D + crank_nicolson_rk4."""
import math

import numpy as np

from hybridsolver import Simulation


def jax_cfd_run(w0_xy, steps, dt=1e-3, viscosity=1e-3):
    """jax-cfd (float64) from vorticity stored (x, y) as jax-cfd does; returns (x, y)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax_cfd.base as cfd
    import jax_cfd.spectral as spectral

    n = w0_xy.shape[0]
    grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    equation = spectral.equations.ForcedNavierStokes2D(viscosity, grid, smooth=True)
    step = jax.jit(spectral.time_stepping.crank_nicolson_rk4(equation, dt))
    w_hat = jnp.fft.rfftn(jnp.asarray(w0_xy))
    for _ in range(steps):
        w_hat = step(w_hat)
    return np.asarray(jnp.fft.irfftn(w_hat))


def test_kolmogorov_128_agrees_with_jax_cfd_after_200_steps(case):
    case["grid"]["shape"] = [128, 128]
    case["time"] = {"scheme": "cn_rk4", "dt": 1e-3, "steps": 200}
    sim = Simulation.from_case(case)
    w0 = sim.fields()["vorticity"][0]
    sim.advance(200)
    ours = sim.fields()["vorticity"][0]
    theirs = jax_cfd_run(w0.T, 200).T
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    print(f"relative L2 difference to jax-cfd after 200 steps: {rel:.3e}")
    assert np.linalg.norm(ours - w0) > 1e-2 * np.linalg.norm(w0)  # the flow did evolve
    assert rel < 1e-8
