"""Reading the HINE data (``python -m plugins.hine.generate``) and comparing two DNS
resolutions' 64^2 statistics (does a 128^2 DNS give the 256^2 one's flow?).

    python -m plugins.hine.data data/hine [--compare data/hine256]

Printed per dataset: the vorticity's std (the paper divides its fields by 10), the
kinetic energy's mean and std, the rms of the zonal-mean zonal velocity (the jets), and
with ``--compare`` the time-mean KE spectra side by side and their log-spectral RMSE.
"""
import argparse
import sys

import numpy as np

from hybridsolver.case import CaseError

from .. import recording
from ..flow_statistics import energy_spectrum, kinetic_energy, log_spectral_rmse, zonal_mean

SCALE = 10.0  # the paper's normalisation: fields divided by 10


def load_vorticity(folder, split):
    """The vorticity of ``split`` ('train' or 'test'): (trajectories, T, 64, 64) float32,
    with the times (T,) and the box's length (Ly, Lx)."""
    return recording.load_split(folder, "plugins.hine.generate", split, "vorticity")


def zonal_velocity(omega, length):
    """The zonal-mean zonal velocity (..., ny) of vorticity ``omega`` (..., ny, nx):
    d<u>/dy = -<omega> integrated spectrally in y (zero mean)."""
    mean = zonal_mean(omega)
    ny = mean.shape[-1]
    k = 2 * np.pi * np.fft.rfftfreq(ny, length[0] / ny)
    w_hat = np.fft.rfft(mean, axis=-1)
    u_hat = np.divide(1j * w_hat, k, out=np.zeros_like(w_hat), where=k > 0)  # -w_hat / (i k)
    return np.fft.irfft(u_hat, n=ny, axis=-1)


def summary(folder):
    """{'std', 'energy' (mean, std), 'jets' (rms zonal-mean u), 'spectrum' (k, E),
    'trajectories'} of every trajectory of ``folder`` (training and test)."""
    parts = [load_vorticity(folder, split) for split in ("train", "test")]
    omega, length = np.concatenate([p[0] for p in parts]), parts[0][2]
    energy = kinetic_energy(omega, length)
    return {"std": float(omega.std()), "energy": (float(energy.mean()), float(energy.std())),
            "jets": float(np.sqrt(np.mean(zonal_velocity(omega, length) ** 2))),
            "spectrum": energy_spectrum(omega, length), "trajectories": len(omega)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a HINE dataset folder")
    parser.add_argument("--compare", help="another one (e.g. a 256^2 DNS's)")
    args = parser.parse_args(argv)
    try:
        rows = {name: summary(name) for name in (args.data, args.compare) if name}
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, row in rows.items():
        print(f"{name}: {row['trajectories']} trajectories, vorticity std {row['std']:.3f}, energy "
              f"{row['energy'][0]:.3f} ± {row['energy'][1]:.3f}, rms zonal-mean u {row['jets']:.3f}")
    if args.compare:
        (k, a), b = rows[args.data]["spectrum"], rows[args.compare]["spectrum"][1]
        print("  k   E (data)    E (compare)  ratio")
        for j in range(1, len(k)):
            print(f"{k[j]:4.0f}  {a[j]:.4e}  {b[j]:.4e}  {a[j] / b[j]:.3f}")
        print(f"log-spectral RMSE: {log_spectral_rmse(a, b):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
