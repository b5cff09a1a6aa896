"""Score an ensemble against a truth with xarray and hybridsolver.uq.

    python examples/score_ensemble_xarray.py [--out runs/uq_example] [--steps 2000]

Runs ``cases/kolmogorov64_uq.toml`` (8 members parted by stochastic forcing) and its
truth (member 100 of the same case), then opens both ``fields.nc`` with xarray
(``decode_times=False`` keeps the model time as floats; hybridsolver's files follow the
CF conventions) and scores the ensemble: RMSE of the ensemble mean and spread over time,
CRPS and the spread-skill ratio at the end.  ``hybridsolver report RUN_DIR`` makes the
full set (``scores.nc``, figures).
"""
import argparse
import os

import xarray as xr

from hybridsolver import Simulation, uq

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "kolmogorov64_uq.toml")


def main(argv=None):
    """Returns {"rmse", "spread": xarray (time,), "crps", "spread_skill": floats at the end}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/uq_example")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--members", type=int, default=8)
    args = parser.parse_args(argv)
    settings = {"time.steps": args.steps, "output.fields_every": max(1, args.steps // 10)}
    runs = {"ensemble": settings | {"ensemble.members": args.members},
            "truth": settings | {"ensemble.first_member": 100, "ensemble.members": 1}}
    for name, overrides in runs.items():
        Simulation.from_case(CASE, overrides).run(os.path.join(args.out, name), progress=False)

    def vorticity(name):
        return xr.open_dataset(os.path.join(args.out, name, "fields.nc"), decode_times=False)["vorticity"]

    ensemble, truth = vorticity("ensemble"), vorticity("truth").isel(member=0)
    rmse = ((ensemble.mean("member") - truth) ** 2).mean(("y", "x")) ** 0.5
    spread = ensemble.var("member", ddof=1).mean(("y", "x")) ** 0.5
    last = ensemble.isel(time=-1).values, truth.isel(time=-1).values
    scores = {"rmse": rmse, "spread": spread, "crps": float(uq.crps(*last).mean()),
              "spread_skill": float(uq.spread_skill(*last))}
    for t, r, s in zip(rmse.time.values, rmse.values, spread.values):
        print(f"t = {t:6.2f}: RMSE {r:.3f}, spread {s:.3f}")
    print(f"at the end: CRPS {scores['crps']:.3f}, spread-skill {scores['spread_skill']:.2f}")
    return scores


if __name__ == "__main__":
    main()
