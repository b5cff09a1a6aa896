"""The ``hybridsolver`` command line (DESIGN.md section 7).

Bad input exits with code 2 and one line on stderr naming the key or file; a run
(or a dataset) whose members stop being finite exits with code 1 (a run whose failed
members were quarantined while the others finished exits with 0 and a warning); a run
stopped by SIGTERM or SIGINT exits with 128 + the signal number after its checkpoint; a
run whose run directory could not be written (no space, quota, I/O error) exits with
:data:`WRITE_FAILED` (74, sysexits' EX_IOERR) and one line naming the file, the last
complete checkpoint and the command that resumes.
"""
import argparse
import shlex
import signal
import sys

from .case import CaseError, load_case
from .overrides import parse_set_options

WRITE_FAILED = 74


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CaseError(f"{self.prog}: {message}")


def _parser():
    parser = _Parser(prog="hybridsolver", description="Ensemble spectral PDE solver with ML plugins.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run a case file")
    run.add_argument("case", help="case file (TOML)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a case key")
    run.add_argument("--out", help="run directory (default: output.dir or runs/CASE)")
    run.add_argument("--members", type=int, help="ensemble size (ensemble.members)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"),
                     help="device for every plugin's inference (default: each plugin's device key)")
    run.add_argument("--force", action="store_true",
                     help="run even if the disk has less free space than the run's estimated outputs")
    run.add_argument("--resume", action="store_true",
                     help="continue the run directory from its checkpoint (same case and --set options)")
    run.add_argument("--dask", metavar="ADDRESS", help="run the members as chunks on a Dask cluster: 'local' "
                                                       "(a LocalCluster) or a scheduler address (distributed.address)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or final report")
    validate = sub.add_parser("validate", help="check a case file without running it")
    validate.add_argument("case")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    generate = sub.add_parser("generate", help="write train/validation/test trajectory datasets of a case")
    generate.add_argument("case", help="case file (TOML)")
    generate.add_argument("--out", required=True, help="dataset folder (train.nc, validation.nc, test.nc)")
    generate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a case key")
    for split in ("train", "validation", "test"):
        generate.add_argument(f"--{split}", type=int, help=f"{split} trajectories (dataset.{split})")
    generate.add_argument("--batch", type=int, default=64, help="members stepped together (default 64)")
    generate.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                          help="stored precision (default float32)")
    generate.add_argument("--quiet", action="store_true", help="no progress bar")
    report = sub.add_parser("report", help="scores.nc, figures and index.html of a run directory")
    report.add_argument("run_dir", help="run directory (written by hybridsolver run)")
    report.add_argument("--reference", help="reference run directory or truth netCDF file (default: the run's "
                                            "[reference] case table)")
    report.add_argument("--member", type=int, help="row of the reference's truth member (default: "
                                                   "reference.member, else 0)")
    report.add_argument("--sigmas", type=float, default=5.0, help="exit band: the reference's mean ± N std of "
                                                                  "its energy (default 5)")
    plugins = sub.add_parser("plugins", help="plugin artifacts")
    plugins_sub = plugins.add_subparsers(dest="plugins_command", required=True, parser_class=_Parser)
    inspect = plugins_sub.add_parser("inspect", help="print an artifact's manifest (after checking it)")
    inspect.add_argument("artifact", help="artifact file (.pt) or registered plugin name")
    plugins_sub.add_parser("list", help="list the plugins registered through entry points")
    return parser


def _load(args):
    overrides = parse_set_options(args.set)
    if getattr(args, "members", None) is not None:
        overrides["ensemble.members"] = args.members
    if getattr(args, "dask", None):
        overrides["distributed.address"] = args.dask
    case = load_case(args.case, overrides)
    for entry in case.data["plugins"]:
        entry["device"] = getattr(args, "device", None) or entry["device"]
    return case


def _plugins_command(args):
    from . import plugin

    if args.plugins_command == "list":
        for name, entry in sorted(plugin.registered().items()):
            print(f"{name}: {plugin.resolve(name)} ({entry.value})")
        return 0
    print(plugin.describe(plugin.resolve(args.artifact)))
    return 0


def _generate_command(args):
    from .datasets import DatasetError, generate

    counts = {split: getattr(args, split) for split in ("train", "validation", "test")}
    try:
        paths = generate(args.case, args.out, parse_set_options(args.set), counts, args.batch, args.dtype,
                         progress=not args.quiet)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _report_plugins(summary):
    for name, p in summary["plugins"].items():
        mean = f"{p['mean_ms']:.3f} ms/call" if p["calls"] else "no calls"
        print(f"  {name}: {p['calls']} calls, {mean}, {100 * (p['share'] or 0):.1f}% of wall time, "
              f"{p['bytes_to_device']} B to / {p['bytes_from_device']} B from the device")


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        if args.command == "plugins":
            return _plugins_command(args)
        if args.command == "generate":
            return _generate_command(args)
        if args.command == "report":
            from .report import report  # matplotlib loads only for reports

            print(report(args.run_dir, args.reference, args.member, sigmas=args.sigmas)[-1])
            return 0
        from .output import WriteError
        from .simulation import Simulation  # numba kernels load only for real work

        case = _load(args)
        if args.command == "run" and "address" in case.data["distributed"]:
            summary = _distributed_run(case, args)
        else:
            sim = Simulation(case)
            if args.command == "validate":
                from .case_warnings import case_warnings

                sim.start_hooks()  # artifacts' dry runs
                for line in case_warnings(sim):
                    print(f"{args.case}: warning: {line}", file=sys.stderr)
                print(f"{args.case}: ok ({sim.equation.name}, grid {sim.grid.shape}, "
                      f"{len(sim.members)} member{'s' * (len(sim.members) != 1)}, {sim.total_steps} steps)")
                return 0
            try:
                summary = sim.run(out_dir=args.out, progress=not args.quiet, resume=args.resume, force=args.force)
            except WriteError as exc:
                print(_write_failure(exc, argv if argv is not None else sys.argv[1:]), file=sys.stderr)
                return WRITE_FAILED
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet and summary["ms_per_step"] is not None:
        print(f"{summary['run_dir']}: {summary['status']}, step {summary['final_step']}, "
              f"{summary['ms_per_step']:.3f} ms/step ({summary['ms_per_member_step']:.3f} ms/member-step)")
        _report_plugins(summary)
    return _exit_code(summary)


def _write_failure(exc, argv):
    """The one line of a failed write: the file and the error, the disk's free space, the
    last complete checkpoint and the command that resumes the run."""
    import shutil

    from .rundir import checkpoint_step

    step = checkpoint_step(exc.run_dir)
    try:
        free = f", {shutil.disk_usage(exc.run_dir).free / 1e6:.2f} MB free"
    except OSError:
        free = ""
    if step is None:
        return f"error: {exc}{free}; no complete checkpoint: free space, then start the run again"
    resume = [a for a in argv if a not in ("--resume", "--force")]
    if "--out" not in resume:
        resume += ["--out", exc.run_dir]
    return (f"error: {exc}{free}; the last complete checkpoint is step {step}: free space, then resume with "
            f"hybridsolver {shlex.join(resume)} --resume")


def _distributed_run(case, args):
    """``run`` with ``distributed.address`` set: the summary of the chunked run."""
    if args.resume:
        raise CaseError("--resume: not supported for runs on a Dask cluster (distributed.address)")
    from .distributed import run_distributed  # dask loads only for distributed runs

    return run_distributed(case, out_dir=args.out, progress=not args.quiet)


def _exit_code(summary):
    """0 for a finished run (warning about quarantined members), 1 for a failed one, and
    128 + the signal's number for a run a signal stopped (its checkpoint resumes it)."""
    status = summary["status"]
    failed = {m: s for m, s in summary["member_status"].items() if s != "ok"}
    if status == "interrupted":
        print(f"{summary['run_dir']}: interrupted by {summary['signal']} at step {summary['final_step']}; "
              "continue with --resume", file=sys.stderr)
        return 128 + signal.Signals[summary["signal"]].value
    if status == "quarantined":
        print(f"warning: members quarantined: {failed}", file=sys.stderr)
        return 0
    if status != "ok":
        print(f"error: members stopped: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
