"""Speed of the navier_stokes2d host, as ratios measured in one process.

    python benchmarks/bench_ns2d.py [--json results.json] [--repeats 7]

All on cases/kolmogorov_2pi.toml (jax-cfd's Kolmogorov flow, 2/3 rule, dt 1e-3).

1. 256^2, one member, cn_rk4: ms/step against the time of the FFTs it does (5 stages x
   (2 inverse + 2 forward) = 20), timed interleaved with the steps on the same plans.
2. 256^2, one member, cn (one explicit evaluation, 4 FFTs); also against 5 FFTs, the
   count of the advective form.
3. jax-cfd's ForcedNavierStokes2D + crank_nicolson_rk4 (float64, steps fused with
   lax.fori_loop under jit) at 256^2 and 64^2 against ours, timed in turns; the
   speedup is the median of the paired ratios.
4. 64^2, cn_rk4: member-steps per second of a 32-member ensemble against one member.

Step times are minima over ``--repeats`` repetitions (noise only ever adds time).  The
ratio to the FFTs is the median of ratios of step and FFT timings taken back to back,
so both see the same machine state; this 2-core machine's speed drifts by tens of
percent from one second to the next.
"""
import argparse
import math
import os
import time

import numpy as np

from hybridsolver import Simulation, fft
from timing import seconds, write_json

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "kolmogorov_2pi.toml")


def simulation(n, scheme, members):
    sim = Simulation.from_case(CASE, {"grid.shape": [n, n], "time.scheme": scheme, "ensemble.members": members})
    sim.advance(3)  # JIT compilation and FFT planning stay out of the timings
    return sim



def fft_pairs(sim):
    """One forward + one inverse transform of a member-sized field, on the step's plans."""
    tr = sim.equation.transforms
    M = len(sim.members)
    x = fft.empty((M,) + sim.grid.shape, np.float64)
    x[...] = sim.fields()["vorticity"]
    x_hat = fft.empty((M,) + sim.grid.spectral_shape, np.complex128)
    y = fft.empty(x.shape, np.float64)

    def pair():
        tr.forward(x, x_hat)
        tr.inverse(x_hat, y)

    return pair


def against_ffts(sim, ffts, repeats, steps=50):
    """(ms/step, ms per FFT) minima of ``sim``'s steps and of its transforms, timed back to
    back, and the median of the paired ratios of a step to its ``ffts`` FFTs."""
    pair = fft_pairs(sim)
    step_ms, fft_ms = [], []
    for _ in range(repeats):
        step_ms.append(1e3 * seconds(lambda: sim.advance(1), steps))
        fft_ms.append(1e3 * seconds(pair, 2 * steps) / 2)
    return min(step_ms), min(fft_ms), float(np.median(np.divide(step_ms, fft_ms)) / ffts)


def step_vs_ffts(n, scheme, repeats, steps=50):
    """(ms/step, ms per FFT) minima, FFTs per step, and the median of the paired ratios
    of a step to its FFTs (4 per explicit evaluation)."""
    sim = simulation(n, scheme, 1)
    ffts = 4 * sim.stepper.evaluations
    step, one_fft, ratio = against_ffts(sim, ffts, repeats, steps)
    return step, one_fft, ffts, ratio


def jax_cfd_step(n, steps):
    """A function timing one call of jax-cfd's jitted ``steps``-step loop at n^2."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax_cfd.base as cfd
    import jax_cfd.spectral as spectral

    grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    equation = spectral.equations.ForcedNavierStokes2D(1e-3, grid, smooth=True)
    step = spectral.time_stepping.crank_nicolson_rk4(equation, 1e-3)
    run = jax.jit(lambda w: jax.lax.fori_loop(0, steps, lambda i, w: step(w), w))
    w0 = simulation(n, "cn_rk4", 1).fields()["vorticity"][0].T
    w_hat = jnp.fft.rfftn(jnp.asarray(w0))
    run(w_hat).block_until_ready()
    return lambda: run(w_hat).block_until_ready()


def versus_jax_cfd(n, repeats, steps=20):
    """(our ms/step, jax-cfd ms/step) minima and the median of paired speedups."""
    sim = simulation(n, "cn_rk4", 1)
    theirs_call = jax_cfd_step(n, steps)
    ours, theirs = [], []
    for _ in range(repeats):
        time.sleep(0.2)  # let jax's worker threads stop spinning before our turn
        ours.append(1e3 * seconds(lambda: sim.advance(1), steps))
        theirs.append(1e3 * seconds(theirs_call, 1) / steps)
    return min(ours), min(theirs), float(np.median(np.divide(theirs, ours)))


def ours_ms_per_step(n, members, repeats, steps=20):
    sim = simulation(n, "cn_rk4", members)
    return min(1e3 * seconds(lambda: sim.advance(1), steps) for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    r = args.repeats
    results = {}

    step, one_fft, ffts, ratio = step_vs_ffts(256, "cn_rk4", r)
    results["cn_rk4_256"] = {"ms_per_step": step, "fft_ms": one_fft, "ffts": ffts, "ratio_to_ffts": ratio}
    step, one_fft, ffts, ratio = step_vs_ffts(256, "cn", r)
    results["cn_256"] = {"ms_per_step": step, "fft_ms": one_fft, "ffts": ffts, "ratio_to_ffts": ratio,
                         "ratio_to_5_ffts": ratio * ffts / 5}
    single, ensemble = ours_ms_per_step(64, 1, r), ours_ms_per_step(64, 32, r)
    for n in (256, 64):
        ours, theirs, speedup = versus_jax_cfd(n, r)
        results[f"jax_cfd_{n}"] = {"ours_ms": ours, "jax_cfd_ms": theirs, "speedup": speedup}
    results["ensemble_64"] = {"single_ms_per_member_step": single, "m32_ms_per_member_step": ensemble / 32,
                              "throughput_ratio": single / (ensemble / 32)}

    a, b = results["cn_rk4_256"], results["cn_256"]
    print(f"256^2 cn_rk4: {a['ms_per_step']:.3f} ms/step, {a['ffts']} FFTs {a['ffts'] * a['fft_ms']:.3f} ms: "
          f"step / FFTs {a['ratio_to_ffts']:.3f}")
    print(f"256^2 cn:     {b['ms_per_step']:.3f} ms/step, {b['ffts']} FFTs {b['ffts'] * b['fft_ms']:.3f} ms: "
          f"step / FFTs {b['ratio_to_ffts']:.3f}; against 5 FFTs {b['ratio_to_5_ffts']:.3f}")
    for n in (256, 64):
        j = results[f"jax_cfd_{n}"]
        print(f"{n}^2 cn_rk4 vs jax-cfd crank_nicolson_rk4: {j['ours_ms']:.3f} vs {j['jax_cfd_ms']:.3f} ms/step: "
              f"{j['speedup']:.2f}x faster")
    e = results["ensemble_64"]
    print(f"64^2 ensemble: 1 member {e['single_ms_per_member_step']:.3f}, 32 members "
          f"{e['m32_ms_per_member_step']:.3f} ms/member-step: throughput ratio {e['throughput_ratio']:.2f}")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
