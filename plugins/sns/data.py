"""Reading the SNS data (``python -m plugins.sns.generate``) and its statistics: the
vorticity of a split, its normalisation scale, and the time-mean isotropic kinetic-energy
spectrum of every trajectory, which ``--compare`` sets beside another dataset's (is a
256^2 DNS's 64^2 band the 512^2 one's?).

    python -m plugins.sns.data data/sns [--compare data/sns512]

Spectra: :func:`plugins.flow_statistics.energy_spectrum`, averaged over every snapshot.
"""
import argparse
import sys

import numpy as np

from hybridsolver.case import CaseError

from .. import recording
from ..flow_statistics import energy_spectrum, log_spectral_rmse


def load_vorticity(folder, split):
    """The vorticity of ``split`` ('train' or 'test'): (trajectories, T, 64, 64) float32,
    with the times (T,) and the box's length (Ly, Lx)."""
    return recording.load_split(folder, "plugins.sns.generate", split, "vorticity")


def summary(folder):
    """{'std', 'spectrum' (k, E), 'trajectories'} of the vorticity of every trajectory of
    ``folder`` (training and test)."""
    parts = [load_vorticity(folder, split) for split in ("train", "test")]
    omega = np.concatenate([p[0] for p in parts])
    return {"std": float(omega.std()), "spectrum": energy_spectrum(omega, parts[0][2]), "trajectories": len(omega)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="an SNS dataset folder")
    parser.add_argument("--compare", help="another one (e.g. the 512^2 DNS's)")
    args = parser.parse_args(argv)
    try:
        mine = summary(args.data)
        other = summary(args.compare) if args.compare else None
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.data}: vorticity std {mine['std']:.4f} over {mine['trajectories']} trajectories "
          "(the paper's normalisation: 4.44)")
    if other:
        print(f"{args.compare}: vorticity std {other['std']:.4f} over {other['trajectories']} trajectories")
        k, a = mine["spectrum"]
        b = other["spectrum"][1]
        print("  k   E (data)    E (compare)  ratio")
        for j in range(1, len(k)):
            print(f"{k[j]:4.0f}  {a[j]:.4e}  {b[j]:.4e}  {a[j] / b[j]:.3f}")
        print(f"log-spectral RMSE: {log_spectral_rmse(a, b):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
