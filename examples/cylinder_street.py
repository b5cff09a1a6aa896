"""The von Karman street of the latent-SDE paper's cylinder dataset: u and the vorticity
of one snapshot, read with xarray.

    hybridsolver generate cases/cylinder_re160.toml --out data/cylinder --set output.fields_every=5
    python examples/cylinder_street.py data/cylinder/test.nc --out cylinder_street.png [--time 15.0]

The file's dims are ``(member, time, y, x)``; ``x`` and ``y`` are the paper's window
coordinates ([-0.5, 3.5] x [-0.5, 0.5], spacing 0.0125, the cylinder of diameter 0.125 at
the origin).  The vorticity dv/dx - du/dy is taken by second-order central differences on
the window (one-sided at its edges).
"""
import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def vorticity(u, v):
    """dv/dx - du/dy of DataArrays ``u``, ``v`` (y, x) on their coordinates."""
    return v.differentiate("x") - u.differentiate("y")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a split file of hybridsolver generate (e.g. data/cylinder/test.nc)")
    parser.add_argument("--out", default="cylinder_street.png")
    parser.add_argument("--time", type=float, help="snapshot time (default: the file's last)")
    parser.add_argument("--member", type=int, default=0, help="trajectory row")
    args = parser.parse_args(argv)
    ds = xr.open_dataset(args.path, decode_times=False)  # model time as floats
    snap = ds.isel(member=args.member).sel(time=args.time if args.time is not None else ds.time[-1],
                                           method="nearest")
    u, v = snap["u"].astype("f8"), snap["v"].astype("f8")
    w = vorticity(u, v)
    fig, axs = plt.subplots(2, 1, figsize=(9, 4.6), layout="constrained", sharex=True)
    limit = float(np.nanpercentile(np.abs(w), 99.5))
    panels = ((u, "u (streamwise velocity, U = 1)", "viridis", None),
              (w, "vorticity dv/dx - du/dy", "RdBu_r", (-limit, limit)))
    for ax, (field, title, cmap, scale) in zip(axs, panels):
        vmin, vmax = scale or (float(field.min()), float(field.max()))
        mesh = ax.pcolormesh(field.x, field.y, field, cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest")
        ax.add_patch(plt.Circle((0.0, 0.0), 0.0625, color="k"))
        ax.set(aspect="equal", ylabel="y", title=title)
        fig.colorbar(mesh, ax=ax, shrink=0.9)
    axs[-1].set_xlabel("x")
    fig.suptitle(f"flow past a cylinder, Re = 160, t = {float(snap.time):.2f} ({ds.attrs.get('split', '')} split, "
                 f"{u.sizes['x']} x {u.sizes['y']} window)")
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
