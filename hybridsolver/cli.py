"""The ``hybridsolver`` command line (DESIGN.md section 7).

Bad input exits with code 2 and one line on stderr naming the key or file; a run
whose members stop being finite exits with code 1.
"""
import argparse
import sys

from .case import CaseError, load_case, parse_set_options


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
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="device for plugin inference")
    run.add_argument("--quiet", action="store_true", help="no progress bar or final report")
    validate = sub.add_parser("validate", help="check a case file without running it")
    validate.add_argument("case")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _load(args):
    overrides = parse_set_options(args.set)
    if getattr(args, "members", None) is not None:
        overrides["ensemble.members"] = args.members
    return load_case(args.case, overrides)


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        from .simulation import Simulation  # numba kernels load only for real work

        sim = Simulation(_load(args))
        if args.command == "validate":
            print(f"{args.case}: ok ({sim.equation.name}, grid {sim.grid.shape}, "
                  f"{len(sim.members)} member{'s' * (len(sim.members) != 1)}, {sim.total_steps} steps)")
            return 0
        summary = sim.run(out_dir=args.out, progress=not args.quiet)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"{summary['run_dir']}: {summary['status']}, step {summary['final_step']}, "
              f"{summary['ms_per_step']:.3f} ms/step ({summary['ms_per_member_step']:.3f} ms/member-step)")
    if summary["status"] != "ok":
        print(f"error: members stopped: {summary['member_status']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
