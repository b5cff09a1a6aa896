"""Zonal jets of the beta-plane flow: the zonal-mean velocity u(y) of each fields record.

    hybridsolver run cases/betaplane_jets256.toml --set time.t_end=50 --set output.fields_every=5000
    python examples/betaplane_zonal_jets.py runs/betaplane_jets256 --out zonal_jets.png

The zonal mean of u = d psi/dy follows from the zonal-mean vorticity: with lap psi = -omega,
the x-mean gives -d^2 psi_bar/dy^2 = omega_bar, so u_bar(k) = i omega_bar(k) / k in Fourier
space along y.  Jets show as u_bar(y) of a few alternating, steady extrema; a flow without
them has u_bar near zero.  Plots up to six records and the mean over the second half of
them (bold); prints the rms of u_bar of each record.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def zonal_mean_u(vorticity, length_y):
    """u_bar (..., ny) from the vorticity (..., ny, nx) on a periodic box of height ``length_y``."""
    w_bar = vorticity.mean(axis=-1)
    ny = w_bar.shape[-1]
    k = 2 * np.pi * np.fft.fftfreq(ny, length_y / ny)
    w_hat = np.fft.fft(w_bar, axis=-1)
    u_hat = np.divide(1j * w_hat, k, out=np.zeros_like(w_hat), where=k != 0)
    return np.fft.ifft(u_hat, axis=-1).real


def main(argv=None):
    """Writes the figure; returns (time (T,), u_bar (T, ny)) of member 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default="zonal_jets.png")
    parser.add_argument("--member", type=int, default=0)
    args = parser.parse_args(argv)
    with xr.open_dataset(os.path.join(args.run_dir, "fields.nc"), decode_times=False) as ds:
        w = ds["vorticity"].isel(member=args.member).values
        time, y = ds["time"].values, ds["y"].values
    length_y = len(y) * (y[1] - y[0])
    u_bar = zonal_mean_u(w, length_y)
    fig, ax = plt.subplots(figsize=(5, 6), layout="constrained")
    shown = np.unique(np.linspace(0, len(time) - 1, min(len(time), 6)).round().astype(int))
    for i in shown:
        ax.plot(u_bar[i], y, lw=0.8, label=f"t = {time[i]:g}")
    late = len(time) // 2
    ax.plot(u_bar[late:].mean(axis=0), y, "k", lw=2, label=f"mean over t >= {time[late]:g}")
    ax.set(xlabel="zonal-mean u", ylabel="y", title="beta-plane flow: zonal-mean velocity")
    ax.legend(fontsize="small")
    fig.savefig(args.out, dpi=100)
    for t, profile in zip(time, u_bar):
        print(f"t = {t:7.2f}: rms u_bar {np.sqrt((profile**2).mean()):.4f}")
    print(args.out)
    return time, u_bar


if __name__ == "__main__":
    main()
