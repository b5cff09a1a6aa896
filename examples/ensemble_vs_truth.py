"""The main job's ensemble against the truth: the figure of the README's front page.

    hybridsolver run cases/kolmogorov64_lcdm.toml
    python examples/ensemble_vs_truth.py runs/kolmogorov64_lcdm --out docs/images/main_job.png

Reads the run's last fields record and the truth at the same time of the DNS test
trajectory the L-CDM closure's case starts from (``plugins/lcdm/artifacts/truth.nc``;
the run's step 0 is the truth's first time, t = 30)
and plots the truth, the ensemble mean, one member and the ensemble's standard
deviation (vorticity), titled with each member's relative error D_RE = |w - w_truth| /
|w_truth| (mean and range over members).
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

TRUTH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "plugins", "lcdm", "artifacts",
                     "truth.nc")


def main(argv=None):
    """Writes the figure; returns the members' D_RE (M,)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--truth", default=TRUTH)
    parser.add_argument("--out", default="main_job.png")
    args = parser.parse_args(argv)
    with xr.open_dataset(os.path.join(args.run_dir, "fields.nc"), decode_times=False) as ds:
        elapsed = float(ds.time[-1] - ds.time[0])
        last = ds["vorticity"].isel(time=-1).load()
    with xr.open_dataset(args.truth, decode_times=False) as ds:
        t = float(ds.time[0]) + elapsed
        truth = ds["vorticity"].sel(time=t, method="nearest").load()
    w, reference = last.values, truth.values
    error = np.linalg.norm(w - reference, axis=(1, 2)) / np.linalg.norm(reference)
    panels = [(reference, f"truth (DNS 256², truncated to 64², t = {float(truth.time):g})"),
              (w.mean(axis=0), f"ensemble mean ({len(w)} members)"),
              (w[0], "member 0"), (w.std(axis=0, ddof=1), "ensemble standard deviation")]
    limit = float(np.abs(reference).max())
    fig, axs = plt.subplots(1, 4, figsize=(13, 3.5), layout="constrained")
    for ax, (field, title) in zip(axs, panels):
        spread = title.startswith("ensemble standard")
        mesh = ax.imshow(field, origin="lower", cmap="magma" if spread else "RdBu_r",
                         vmin=0 if spread else -limit, vmax=limit if not spread else None)
        ax.set(title=title, xticks=[], yticks=[])
        fig.colorbar(mesh, ax=ax, shrink=0.85)
    fig.suptitle(f"L-CDM closure in closed loop, 64² reduced Kolmogorov flow at t = {t:g}: vorticity "
                 f"D_RE {error.mean():.3f} (members {error.min():.3f} to {error.max():.3f})")
    fig.savefig(args.out, dpi=90)
    print(args.out)
    return error


if __name__ == "__main__":
    main()
