"""Speed and accuracy of the kdv and burgers2d hosts against scipy and numpy, as ratios
measured in one process.

    python benchmarks/bench_kdv_burgers.py [--repeats 3] [--members 64] [--t-end 1]
        [--lsoda-trajectories 8] [--reference rk4|lsoda] [--burgers-members 30]
        [--burgers-snapshots 100] [--threads N] [--json results.json] [--quick]

1. KdV, cases/kdv.toml (the finite-difference system, n = 1000, ``rk4``, dt = 1e-3/64):
   ``--members`` trajectories with a snapshot at step 0 and every ``output.fields_every``
   (64) steps to ``--t-end`` (1001 snapshots for t_end = 1), collected in memory as one
   float64 array (members, snapshots, 1000), against ``scipy.integrate.solve_ivp(rhs,
   method="LSODA", t_eval=<the same snapshot times>)`` with scipy's default tolerances,
   one trajectory at a time, where ``rhs`` is the same finite-difference system written
   with ``np.roll``; both start from our simulation's initial state.  LSODA takes seconds
   per trajectory, so only ``--lsoda-trajectories`` of them are solved and its time for
   all members is extrapolated linearly (mean time per trajectory x members).
   Accuracy: the largest difference between the two datasets over the trajectories
   LSODA solved, and, for trajectory 0, each one's largest difference from a tight
   reference: by default our ``rk4`` at dt/4 (it converges to the exact solution of the
   same ODE system at fourth order, so its own error is about 1/256 of ours at dt);
   ``--reference lsoda`` uses LSODA with rtol 1e-10, atol 1e-12 instead (independent of
   our code, but its global error is not controlled and it takes several times as long).
   LSODA's time grows much less than linearly with t_end (most of it goes into its
   start and its Jacobians), ours linearly, so runs shorter than t_end = 1 overstate
   the speedup.
2. Burgers 2D, cases/burgers2d.toml (128^2, Dirichlet walls, ``heun``, dt = 1e-4):
   ``--burgers-members`` members over ``--burgers-snapshots`` snapshots of
   ``output.fields_every`` (10) steps against a plain vectorized numpy implementation of
   the same Heun central-difference scheme on the same members as one (members, 128,
   128) array; ms per member-step of both, their ratio and the largest difference of the
   two datasets (round-off).  Also one explicit evaluation of our kernel against one
   ``np.copyto`` of the state (a memory-traffic floor: the kernel reads the state once
   and writes the tendency once).

Our timings are minima over ``--repeats`` repetitions (noise only ever adds time), taken
in turns with the numpy peer for Burgers; JIT loading stays out of them (a small
simulation is stepped first).  Ours run on numba's threads (``--threads``, default all),
scipy's LSODA and numpy on one core.  This 2-core virtual machine has periods in which
two-threaded work takes much longer while single-threaded work barely changes, so the
ratios are conservative when the machine is busy.  ``--quick`` is a smoke run (8
members, t_end 0.1, 2 LSODA trajectories, Burgers 8 members x 10 snapshots); options
given explicitly override it.
"""
import argparse
import inspect
import os
import shlex
import sys
import time

import numba
import numpy as np
from scipy.integrate import LSODA, solve_ivp

from hybridsolver import Simulation
from timing import seconds, write_json

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases")
KDV = os.path.join(CASES, "kdv.toml")
BURGERS = os.path.join(CASES, "burgers2d.toml")

FULL = {"repeats": 3, "members": 64, "t_end": 1.0, "lsoda_trajectories": 8, "burgers_members": 30,
        "burgers_snapshots": 100}
QUICK = {"repeats": 3, "members": 8, "t_end": 0.1, "lsoda_trajectories": 2, "burgers_members": 8,
         "burgers_snapshots": 10}
TIGHT = {"rtol": 1e-10, "atol": 1e-12}  # the LSODA reference's tolerances
CRITERION = 10.0  # KdV: our host must be at least this many times faster than LSODA


def timed(fn, *args, **kwargs):
    """(wall seconds, value) of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def collect(sim, snapshots, every):
    """The simulation's first field now and after each of ``snapshots`` further advances
    of ``every`` steps, as one float64 array (members, snapshots + 1, *field shape)."""
    name = sim.equation.fields[0]
    first = sim.fields()[name]
    out = np.empty((first.shape[0], snapshots + 1) + first.shape[1:])
    out[:, 0] = first
    for s in range(1, snapshots + 1):
        sim.advance(every)
        out[:, s] = sim.fields()[name]
    return out


def warm_up(case):
    """Load the JIT-compiled kernels of ``case``'s host (a 1-member simulation, 3 steps)."""
    Simulation.from_case(case, {"ensemble.members": 1}).advance(3)


def our_tendency(sim, u):
    """Our kernel's right-hand side of fields u (M, ...): ``equation.explicit``."""
    out = np.empty_like(u)
    sim.equation.explicit(np.ascontiguousarray(u), out)
    return out


def trajectories(n):
    return f"{n} trajector{'y' if n == 1 else 'ies'}"


def max_diff(a, b):
    return float(np.abs(a - b).max())


def spread(times):
    """'min s (range lo-hi s)' of a list of seconds."""
    return f"{min(times):.3f} s (range {min(times):.3f}-{max(times):.3f} s over {len(times)})"


# ---- KdV ---------------------------------------------------------------------------

def kdv_rhs(sim):
    """The finite-difference KdV right-hand side of kdv.py's docstring, periodic, in numpy:
    du_j/dt = -u_j (u_{j+1} - u_{j-1})/(2 dx) - nu (u_{j+2} - 3 u_{j+1} + 3 u_j - u_{j-1})/dx^3."""
    c_adv = 0.5 / sim.grid.dx
    c_disp = sim.equation.viscosity / sim.grid.dx**3

    def rhs(t, u):
        up1, um1 = np.roll(u, -1), np.roll(u, 1)
        return -u * (up1 - um1) * c_adv - c_disp * (np.roll(u, -2) - 3.0 * up1 + 3.0 * u - um1)

    return rhs


def lsoda(rhs, u0, times, **tolerances):
    """(seconds, snapshots (len(times), n)) of one solve_ivp LSODA trajectory."""
    seconds_, sol = timed(solve_ivp, rhs, (0.0, times[-1]), u0, "LSODA", times, **tolerances)
    if not sol.success:
        raise RuntimeError(f"solve_ivp LSODA failed: {sol.message}")
    return seconds_, sol.y.T


def rk4_reference(u0, dt, snapshots, every, refine=4):
    """Snapshots (snapshots + 1, n) of one trajectory from ``u0`` by our rk4 at dt/refine,
    on one thread (a 1-member ensemble is too small for two)."""
    sim = Simulation.from_case(KDV, {"ensemble.members": 1, "time.dt": dt / refine})
    sim.set_initial({"u": u0})
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return collect(sim, snapshots, every * refine)[0]
    finally:
        numba.set_num_threads(threads)


def kdv(args):
    warm_up(KDV)
    overrides = {"ensemble.members": args.members, "time.t_end": args.t_end}
    every = Simulation.from_case(KDV, overrides).case.data["output"]["fields_every"]
    ours = []
    for _ in range(args.repeats):  # the last repetition's dataset is kept for the accuracy figures
        sim = Simulation.from_case(KDV, overrides)
        snapshots = sim.total_steps // every
        seconds_, data = timed(collect, sim, snapshots, every)
        ours.append(seconds_)
    dt, times = sim.dt, np.arange(snapshots + 1) * every * sim.dt
    u0 = data[:, 0]
    rhs = kdv_rhs(sim)
    tendency = our_tendency(sim, u0)
    rhs_diff = max(max_diff(tendency[m], rhs(0.0, u0[m])) for m in range(len(u0)))
    print(f"KdV (cases/kdv.toml, n = {sim.grid.n}, rk4, dt = {dt:g}): {args.members} trajectories x "
          f"{snapshots + 1} snapshots (every {every} steps to t = {times[-1]:g}), numba threads "
          f"{numba.get_num_threads()}")
    print(f"  numpy right-hand side vs our kernel on the initial states: max |diff| = {rhs_diff:.1e}")
    print(f"  ours: {spread(ours)} for {args.members} trajectories, in memory (float64 {data.shape})")

    defaults = {k: inspect.signature(LSODA).parameters[k].default for k in ("rtol", "atol")}
    count = min(args.lsoda_trajectories, args.members)
    runs = [lsoda(rhs, u0[m], times) for m in range(count)]
    per = [r[0] for r in runs]
    theirs = np.array([r[1] for r in runs])
    lsoda_total = sum(per) / count * args.members
    extrapolated = count < args.members
    print(f"  LSODA (solve_ivp defaults rtol = {defaults['rtol']:g}, atol = {defaults['atol']:g}), one trajectory "
          f"at a time: solved {count} of {args.members} in {sum(per):.2f} s ({min(per):.2f}-{max(per):.2f} s each)")
    if extrapolated:
        print(f"  LSODA for {args.members} trajectories: {lsoda_total:.1f} s, EXTRAPOLATED linearly from the "
              f"{count} solved ({sum(per) / count:.2f} s per trajectory x {args.members})")
    else:
        print(f"  LSODA for {args.members} trajectories: {lsoda_total:.1f} s, all solved (not extrapolated)")
    speedup = lsoda_total / min(ours)
    config = (args.members, args.t_end) == (FULL["members"], FULL["t_end"])
    verdict = "MET" if speedup >= CRITERION else "NOT MET"
    if not config:
        verdict += (f" for this configuration only: the criterion is stated for {FULL['members']} members, "
                    f"t_end {FULL['t_end']:g}, and LSODA's time grows much less than linearly with t_end "
                    f"while ours is proportional to it, so a shorter run overstates the speedup")
    print(f"  speedup (LSODA for {args.members} / ours for {args.members}): {speedup:.1f}x -> criterion "
          f">= {CRITERION:g}x {verdict}")

    datasets_diff = max_diff(data[:count], theirs)
    if args.reference == "rk4":
        reference = rk4_reference(u0[0], dt, snapshots, every)
        label = "our rk4 at dt/4"
    else:
        reference = lsoda(rhs, u0[0], times, **TIGHT)[1]
        label = f"LSODA rtol {TIGHT['rtol']:g}, atol {TIGHT['atol']:g}"
    ours_error, lsoda_error = max_diff(data[0], reference), max_diff(theirs[0], reference)
    print(f"  max |ours - LSODA| over the {trajectories(count)} LSODA solved, all snapshots: {datasets_diff:.2e}")
    print(f"  trajectory 0 against the reference ({label}): ours {ours_error:.2e}, LSODA {lsoda_error:.2e}")
    return {"members": args.members, "snapshots": snapshots + 1, "t_end": float(times[-1]), "dt": dt,
            "threads": numba.get_num_threads(), "ours_seconds": ours, "ours_seconds_min": min(ours),
            "lsoda_rtol": defaults["rtol"], "lsoda_atol": defaults["atol"], "lsoda_trajectories": count,
            "lsoda_seconds_each": per, "lsoda_seconds_all": lsoda_total, "lsoda_extrapolated": extrapolated,
            "speedup": speedup, "criterion": CRITERION, "criterion_met": speedup >= CRITERION,
            "rhs_max_diff": rhs_diff, "datasets_max_diff": datasets_diff, "reference": label,
            "ours_max_error": ours_error, "lsoda_max_error": lsoda_error}


# ---- Burgers 2D --------------------------------------------------------------------

def burgers_rhs(u, cx, cy, dx2, dy2, nu):
    """The central-difference right-hand side of burgers2d.py on (M, ny, nx), x last, with
    u_N the next row; zero on the walls."""
    out = np.zeros_like(u)
    c, e, w = u[:, 1:-1, 1:-1], u[:, 1:-1, 2:], u[:, 1:-1, :-2]
    n, s = u[:, 2:, 1:-1], u[:, :-2, 1:-1]
    out[:, 1:-1, 1:-1] = -((e - w) * cx + (n - s) * cy) * c + nu * ((e - 2.0 * c + w) * dx2 + (n - 2.0 * c + s) * dy2)
    return out


def numpy_heun(u0, snapshots, every, dt, constants):
    """Snapshots (M, snapshots + 1, ny, nx) of Heun steps u+ = u + dt/2 (k1 + k2),
    k1 = f(u), k2 = f(u + dt k1), from u0."""
    u = np.array(u0)
    out = np.empty((u.shape[0], snapshots + 1) + u.shape[1:])
    out[:, 0] = u
    for s in range(1, snapshots + 1):
        for _ in range(every):
            k1 = burgers_rhs(u, *constants)
            k2 = burgers_rhs(u + dt * k1, *constants)
            u += 0.5 * dt * (k1 + k2)
        out[:, s] = u
    return out


def burgers(args, calls=200):
    warm_up(BURGERS)
    members, snapshots = args.burgers_members, args.burgers_snapshots
    ours, theirs, explicit, copy = [], [], [], []
    for _ in range(args.repeats):
        sim = Simulation.from_case(BURGERS, {"ensemble.members": members})
        every = sim.case.data["output"]["fields_every"]
        g = sim.grid
        constants = (0.5 / g.dx, 0.5 / g.dy, g.dx**-2, g.dy**-2, sim.equation.viscosity)
        u0 = sim.fields()["u"]
        seconds_, data = timed(collect, sim, snapshots, every)
        ours.append(seconds_)
        seconds_, reference = timed(numpy_heun, u0, snapshots, every, sim.dt, constants)
        theirs.append(seconds_)
        state, out = sim.state, np.empty_like(sim.state)
        explicit.append(seconds(lambda sim=sim, state=state, out=out: sim.equation.explicit(state, out), calls))
        copy.append(seconds(lambda state=state, out=out: np.copyto(out, state), calls))
    rhs_diff = max_diff(our_tendency(sim, u0), burgers_rhs(u0, *constants))
    member_steps = members * snapshots * every
    ours_ms, theirs_ms = 1e3 * min(ours) / member_steps, 1e3 * min(theirs) / member_steps
    diff = max_diff(data, reference)
    print(f"Burgers 2D (cases/burgers2d.toml, {g.shape[0]}x{g.shape[1]}, Dirichlet, heun, dt = {sim.dt:g}): "
          f"{members} members x {snapshots} snapshots of {every} steps, numba threads {numba.get_num_threads()}")
    print(f"  numpy right-hand side vs our kernel on the initial states: max |diff| = {rhs_diff:.1e}")
    print(f"  ours: {spread(ours)} = {ours_ms:.4f} ms/member-step")
    print(f"  numpy: {spread(theirs)} = {theirs_ms:.4f} ms/member-step")
    print(f"  ratio numpy / ours: {theirs_ms / ours_ms:.1f}x; max |ours - numpy| over all snapshots: {diff:.1e}")
    print(f"  one explicit evaluation of the {members}-member state {1e3 * min(explicit):.3f} ms vs one np.copyto "
          f"of it {1e3 * min(copy):.3f} ms: {min(explicit) / min(copy):.2f}x the copy")
    return {"grid": list(g.shape), "members": members, "snapshots": snapshots, "steps_per_snapshot": every,
            "dt": sim.dt, "threads": numba.get_num_threads(), "ours_seconds": ours, "numpy_seconds": theirs,
            "ours_ms_per_member_step": ours_ms, "numpy_ms_per_member_step": theirs_ms,
            "speedup": theirs_ms / ours_ms, "max_diff": diff, "rhs_max_diff": rhs_diff,
            "explicit_ms": 1e3 * min(explicit), "copy_ms": 1e3 * min(copy),
            "explicit_over_copy": min(explicit) / min(copy)}


# ---- report ------------------------------------------------------------------------

def table(k, b):
    how = (f"{k['lsoda_trajectories']} solved, extrapolated x{k['members'] / k['lsoda_trajectories']:g}"
           if k["lsoda_extrapolated"] else "all solved")
    rows = [
        (f"KdV FD, {k['members']} trajectories x {k['snapshots']} snapshots (t <= {k['t_end']:g}): `rk4` vs "
         f"`solve_ivp` LSODA (rtol {k['lsoda_rtol']:g}, atol {k['lsoda_atol']:g}; {how})",
         f"{k['ours_seconds_min']:.2f} s", f"{k['lsoda_seconds_all']:.1f} s", f"**{k['speedup']:.1f}x**"),
        (f"KdV: max abs difference from the reference ({k['reference']}), trajectory 0, all snapshots",
         f"{k['ours_max_error']:.1e}", f"{k['lsoda_max_error']:.1e}",
         f"{k['lsoda_max_error'] / k['ours_max_error']:.1e}" if k["ours_max_error"] else "-"),
        (f"KdV: max abs difference ours - LSODA ({trajectories(k['lsoda_trajectories'])}, all snapshots)",
         f"{k['datasets_max_diff']:.1e}", "", ""),
        (f"Burgers 2D {b['grid'][0]}x{b['grid'][1]} Dirichlet, {b['members']} members x {b['snapshots']} snapshots "
         f"of {b['steps_per_snapshot']} steps, `heun` vs vectorized numpy: ms/member-step",
         f"{b['ours_ms_per_member_step']:.4f}", f"{b['numpy_ms_per_member_step']:.4f}", f"**{b['speedup']:.1f}x**"),
        ("Burgers 2D: max abs difference ours - numpy (all snapshots)", f"{b['max_diff']:.1e}", "", ""),
        (f"Burgers 2D: one explicit evaluation ({b['members']} members) vs one `np.copyto` of the state "
         "(memory floor)", f"{b['explicit_ms']:.3f} ms", f"{b['copy_ms']:.3f} ms",
         f"ours = {b['explicit_over_copy']:.2f}x the floor"),
    ]
    lines = ["| measurement | ours | peer | ratio (peer / ours) |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, help=f"our timings' repetitions (default {FULL['repeats']})")
    parser.add_argument("--members", type=int, help=f"KdV trajectories (default {FULL['members']})")
    parser.add_argument("--t-end", type=float, help=f"KdV end time (default {FULL['t_end']:g})")
    parser.add_argument("--lsoda-trajectories", type=int,
                        help=f"KdV trajectories LSODA solves; the rest are extrapolated (default "
                             f"{FULL['lsoda_trajectories']})")
    parser.add_argument("--reference", choices=("rk4", "lsoda"), default="rk4",
                        help="KdV accuracy reference: our rk4 at dt/4 (default) or LSODA rtol 1e-10, atol 1e-12")
    parser.add_argument("--burgers-members", type=int, help=f"default {FULL['burgers_members']}")
    parser.add_argument("--burgers-snapshots", type=int, help=f"default {FULL['burgers_snapshots']}")
    parser.add_argument("--threads", type=int, help="numba threads for our hosts (default: numba's, all cores)")
    parser.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(
        f"{k.replace('_', '-')} {v:g}" for k, v in QUICK.items()))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        numba.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores, numba threads {numba.get_num_threads()}")
    if load > 0.5 and numba.get_num_threads() > 1:
        print(f"  WARNING: the machine is busy; each of our multi-threaded kernels waits for all "
              f"{numba.get_num_threads()} threads, which can make our timings several times slower than on an "
              f"idle machine while LSODA and numpy (one thread) barely change (--threads 1 is less sensitive)")
    results = {"load_average": load, "kdv": kdv(args), "burgers2d": burgers(args)}
    print()
    print(table(results["kdv"], results["burgers2d"]))
    command = shlex.join(["python", "benchmarks/bench_kdv_burgers.py"] + sys.argv[1:])
    print(f"\n({command}, {time.strftime('%Y-%m-%d')}{', quick smoke run' if args.quick else ''})")
    results["command"] = command
    write_json(results, args.json)


if __name__ == "__main__":
    main()
