"""The 10-year QG jet run (cases/qg_jet.toml, 64^2) against pyqg 0.7.2: jets and KE spectra.

    python benchmarks/qg_jet_vs_pyqg.py [--members 4] [--years 10] [--out runs/qg_jet_vs_pyqg]

Runs ``members`` realisations with hybridsolver (one ensemble, members 0..M-1) and the
same number of pyqg models, one after another, from the ``pyqg_random`` starts of
members M..2M-1, so that the two sets are independent draws of the same statistics.
(From the same start the two codes agree to 2e-12 after 5 years and decorrelate by
year 10, when round-off has grown through the turbulence.)  They are compared over the
second half of the run, sampled daily:

- the time-mean zonal-mean zonal velocity ``<u_j>(y)`` of each layer (the jets), and
- the time-mean isotropic KE spectrum of each layer (``Simulation.diagnostics`` shells),

each averaged over the realisations, with the standard error of that average estimated
from the spread between realisations.  Writes ``comparison.json`` (the profiles,
spectra, standard errors and the per-shell z-scores of the spectral difference) and
``jet_vs_pyqg.png``, and prints the summary.  Agreement "within sampling noise" means
that the spectral differences have z-scores of order 1 at every resolved shell.
"""
import argparse
import json
import os
import time

import numpy as np

from hybridsolver import Simulation
from hybridsolver.interop.pyqg import qg_model

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "qg_jet.toml")
YEAR = 365 * 86400.0
SAMPLE_STEPS = 24  # daily at dt = 3600 s


def zonal_mean_u(eq, q_hat):
    """Zonal-mean zonal velocity anomaly (M, 2, ny) of spectral q (M, 2, ny, nx//2+1), m/s."""
    u, _ = eq.velocity(q_hat)
    return u.mean(axis=-1)


def ke_spectra(eq, q_hat):
    """(M, 2, nshell) isotropic KE spectra of each layer."""
    s = eq.spectra(q_hat)
    return np.stack([s["ke_spectrum_1"], s["ke_spectrum_2"]], axis=1)


def run_ours(members, years):
    sim = Simulation.from_case(CASE, {"ensemble.members": members, "time.t_end": years * YEAR})
    eq = sim.equation
    samples = int(round(years * YEAR / sim.dt)) // SAMPLE_STEPS
    u_sum, spec_sum, count = 0.0, 0.0, 0
    start = time.perf_counter()
    for n in range(samples):
        sim.advance(SAMPLE_STEPS)
        if n >= samples // 2:
            u_sum = u_sum + zonal_mean_u(eq, sim.state)
            spec_sum = spec_sum + ke_spectra(eq, sim.state)
            count += 1
    return sim, u_sum / count, spec_sum / count, time.perf_counter() - start


def run_pyqg(sim0, members, years):
    """pyqg runs from members M..2M-1's starts, one after another, sampled like :func:`run_ours`."""
    eq = sim0.equation
    initial = Simulation.from_case(CASE, {"ensemble.members": members,
                                          "ensemble.first_member": members}).fields()["q"]
    samples = int(round(years * YEAR / sim0.dt)) // SAMPLE_STEPS
    u_mean, spec_mean = [], []
    start = time.perf_counter()
    for m in range(members):
        model = qg_model(sim0)
        model.q = np.ascontiguousarray(initial[m])
        u_sum, spec_sum, count = 0.0, 0.0, 0
        for n in range(samples):
            for _ in range(SAMPLE_STEPS):
                model._step_forward()
            if n >= samples // 2:
                q_hat = model.qh[None]
                u_sum = u_sum + zonal_mean_u(eq, q_hat)[0]
                spec_sum = spec_sum + ke_spectra(eq, q_hat)[0]
                count += 1
        u_mean.append(u_sum / count)
        spec_mean.append(spec_sum / count)
    return np.array(u_mean), np.array(spec_mean), time.perf_counter() - start


def mean_and_error(x):
    """Mean over realisations (axis 0) and its standard error."""
    return x.mean(axis=0), x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])


def plot(path, y, k, ours_u, pyqg_u, ours_s, pyqg_s):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for j, ax in enumerate(axes[:2]):
        for (mean, err), label in ((ours_u, "hybridsolver"), (pyqg_u, "pyqg 0.7.2")):
            ax.plot(mean[j], y / 1e3, label=label)
            ax.fill_betweenx(y / 1e3, mean[j] - 2 * err[j], mean[j] + 2 * err[j], alpha=0.25)
        ax.set(xlabel=f"zonal-mean u, layer {j + 1} (m/s)", ylabel="y (km)", title=f"jets, layer {j + 1}")
        ax.legend()
    ax = axes[2]
    for (mean, _), label in ((ours_s, "hybridsolver"), (pyqg_s, "pyqg 0.7.2")):
        for j, style in ((0, "-"), (1, "--")):
            ax.loglog(k[1:], mean[j, 1:], style, label=f"{label}, layer {j + 1}")
    ax.set(xlabel="k (rad/m)", ylabel="KE per shell (m^2/s^2)", title="time-mean KE spectra")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--out", default="runs/qg_jet_vs_pyqg")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sim, ours_u, ours_spec, ours_seconds = run_ours(args.members, args.years)
    print(f"hybridsolver: {args.members} members x {args.years} years in {ours_seconds:.0f} s", flush=True)
    pyqg_u, pyqg_spec, pyqg_seconds = run_pyqg(sim, args.members, args.years)
    print(f"pyqg: {args.members} models x {args.years} years in {pyqg_seconds:.0f} s", flush=True)
    ou, pu = mean_and_error(ours_u), mean_and_error(pyqg_u)
    os_, ps = mean_and_error(ours_spec), mean_and_error(pyqg_spec)
    _, k = sim.grid.shells()
    with np.errstate(invalid="ignore"):  # the k = 0 shell holds no energy
        z = (os_[0] - ps[0]) / np.sqrt(os_[1] ** 2 + ps[1] ** 2)
    resolved = slice(1, len(k))
    result = {
        "members": args.members, "years": args.years, "seconds": {"hybridsolver": ours_seconds, "pyqg": pyqg_seconds},
        "y": sim.grid.y.tolist(), "k": k.tolist(),
        "zonal_mean_u": {"hybridsolver": ou[0].tolist(), "hybridsolver_error": ou[1].tolist(),
                         "pyqg": pu[0].tolist(), "pyqg_error": pu[1].tolist()},
        "ke_spectrum": {"hybridsolver": os_[0].tolist(), "hybridsolver_error": os_[1].tolist(),
                        "pyqg": ps[0].tolist(), "pyqg_error": ps[1].tolist()},
        "spectrum_z": z.tolist(),
        "summary": {
            "max_abs_z": float(np.abs(z[:, resolved]).max()),
            "fraction_abs_z_below_2": float((np.abs(z[:, resolved]) < 2).mean()),
            "total_ke_ratio": (os_[0][:, resolved].sum(axis=1) / ps[0][:, resolved].sum(axis=1)).tolist(),
            "jet_peak_u_layer1": {"hybridsolver": float(np.abs(ou[0][0]).max()), "pyqg": float(np.abs(pu[0][0]).max())},
        },
    }
    with open(os.path.join(args.out, "comparison.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(os.path.join(args.out, "jet_vs_pyqg.png"), sim.grid.y, k, ou, pu, os_, ps)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
