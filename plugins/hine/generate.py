"""Training and test data of the HINE family: β-plane jet turbulence (Re 10^4, χ = 0.1,
β = 20, cosine forcing k_f = 4), snapshots every 0.05 spectrally truncated to 64^2.

    python -m plugins.hine.generate [--out data/hine] [--dns 128] [--trajectories 40] [--test 8]
                                    [--snapshots 500] [--batch 8] [--spin-up 30]
                                    [--case cases/betaplane_jets256.toml]

The DNS is ``--case`` on a ``--dns``² grid at the time step of :data:`DNS_DT` (``etdrk4``,
2/3 dealiasing), one ensemble member per trajectory (its own random initial velocity,
so trajectory m is the same however the trajectories are batched).  After a spin-up of
``--spin-up`` model time (the energy is stationary from t ≈ 20: the drag's e-folding
time is 10), every 0.05 (the paper's emulator step, :data:`SNAPSHOT_DT`) the vorticity is
truncated to 64^2 (:func:`hybridsolver.grid.coarsen`, every resolved Fourier coefficient
kept) and recorded, ``--snapshots`` of them per trajectory.  The paper's DNS is 512^2 at
dt = 1e-4 with 18,000 training snapshots at 256^2; the CPU default is a 128^2 DNS (its
64^2 band against a 256^2 DNS's: ``python -m plugins.hine.data --compare``) with 32
training trajectories of 500 snapshots (16,000).  The first ``trajectories - test``
trajectories are for training, the last ``test`` for testing.

Batches of ``--batch`` trajectories are written to ``batch_<first>-<last>.nc``
(``vorticity`` (trajectory, time, y, x), float32, unnormalised) when they end and
checkpointed every ``--checkpoint-every`` steps (:mod:`plugins.recording`), so an
interrupted run continues where it stopped; ``meta.json`` records the arguments and a
rerun with other ones is refused (exit 2).
"""
import argparse
import sys

from hybridsolver.case import CaseError, load_case
from hybridsolver.output import check_meta

from ..recording import batch_arguments, print_paths
from ..sns.generate import record_truncated

DNS_CASE = "cases/betaplane_jets256.toml"
DNS_DT = {128: 1e-3, 256: 2e-4, 512: 1e-4}  # DNS time step per grid size
SNAPSHOT_DT = 0.05
COARSE = (64, 64)


def dns_overrides(dns):
    """The case overrides of the DNS on a ``dns``² grid."""
    if dns not in DNS_DT:
        raise CaseError(f"--dns: expected one of {sorted(DNS_DT)}, got {dns}")
    return {"grid.shape": [dns, dns], "time.dt": DNS_DT[dns]}


def generate(out, dns=128, trajectories=40, test=8, snapshots=500, batch=8, case=DNS_CASE, spin_up=30.0,
             checkpoint_every=5000, progress=True, coarse=COARSE):
    """Generate (or finish generating) the dataset in ``out``; returns the batch paths
    (training batches first)."""
    if not 0 < test < trajectories:
        raise CaseError(f"--test: expected 0 < test < trajectories ({trajectories}), got {test}")
    if snapshots < 2 or batch < 1 or spin_up < 0:
        raise CaseError(f"--snapshots, --batch and --spin-up: expected at least 2, 1 and 0, got {snapshots}, "
                        f"{batch} and {spin_up}")
    overrides = dns_overrides(dns)
    resolved = load_case(case, overrides)
    every = int(round(SNAPSHOT_DT / DNS_DT[dns]))
    start = int(round(spin_up / DNS_DT[dns]))
    with open(case, "rb") as f:
        case_text = f.read().decode()
    meta = {"case": case_text, "overrides": overrides, "trajectories": trajectories, "test": test,
            "snapshots": snapshots, "batch": batch, "spin_up_steps": start, "every_steps": every,
            "snapshot_dt": SNAPSHOT_DT, "coarse_shape": list(coarse), "coarsening": "spectral truncation"}
    check_meta(out, meta)
    return record_truncated(resolved, out, "python -m plugins.hine.generate", trajectories, test, batch, start,
                            every, snapshots, coarse, checkpoint_every, progress)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    batch_arguments(parser, "data/hine", 40, 8, 8, DNS_CASE)
    parser.add_argument("--dns", type=int, default=128, help="DNS points per side (default 128; the paper's 512)")
    parser.add_argument("--snapshots", type=int, default=500, help="snapshots per trajectory (default 500)")
    parser.add_argument("--spin-up", type=float, default=30.0, help="model time before the first snapshot (30)")
    args = parser.parse_args(argv)
    return print_paths(lambda: generate(args.out, args.dns, args.trajectories, args.test, args.snapshots,
                                        args.batch, args.case, args.spin_up, args.checkpoint_every,
                                        progress=not args.quiet))


if __name__ == "__main__":
    sys.exit(main())
