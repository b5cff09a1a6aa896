"""Per-member monitors: a member that blows up (injected NaN, or energy outside the
monitor's bounds) is quarantined while the others finish bit-identical to a run without
it; ``monitor.on_failure = "abort"`` stops the run instead."""
import json
import os
import signal

import netCDF4
import numpy as np
import pytest
import tomli_w
from signal_hook import SignalAt

from hybridsolver import CaseError, Simulation
from hybridsolver.cli import main
from hybridsolver.hooks import Hook
from hybridsolver_plugins.classic.registry import backscatter


class PoisonMember(Hook):
    """Sets one member row's state to NaN after step ``at`` (a member that blows up)."""

    callsite = "post_step"

    def __init__(self, row, at):
        super().__init__(every=1)
        self.row, self.at = row, at

    def __call__(self, sim, state, previous):
        if sim.step == self.at:
            state[self.row] = np.nan
        return state


@pytest.fixture
def noisy(case):
    """64^2, AB3 (multistep history), Q-Wiener forcing and the stochastic backscatter
    closure every 5 steps; 5 members, 30 steps, monitors every 4 steps."""
    case["grid"]["shape"] = [64, 64]
    case["time"] = {"scheme": "ab3", "dt": 2e-3, "steps": 30}
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5, "alpha": 0.01}
    case["ensemble"]["members"] = 5
    case["plugins"] = [{"path": backscatter, "every": 5}]
    case["output"] = {"fields_every": 10, "diagnostics_every": 5}
    case["monitor"] = {"every": 4}
    return case


def _read(run_dir, name="fields.nc"):
    with netCDF4.Dataset(os.path.join(run_dir, name)) as ds:
        return {v: np.asarray(ds[v][...]) for v in ds.variables}


def _without(case, tmp_path, rows):
    """Fields and diagnostics of runs of the members outside ``rows`` alone (contiguous
    pieces), stacked in member order."""
    keep = [m for m in range(case["ensemble"]["members"]) if m not in rows]
    pieces = np.split(keep, np.flatnonzero(np.diff(keep) > 1) + 1)
    fields, diagnostics = [], []
    for piece in pieces:
        out = str(tmp_path / f"alone{piece[0]}")
        Simulation.from_case(case, {"ensemble.first_member": int(piece[0]),
                                    "ensemble.members": len(piece)}).run(out_dir=out, progress=False)
        fields.append(_read(out)["vorticity"])
        diagnostics.append(_read(out, "diagnostics.nc")["energy"])
    return keep, np.concatenate(fields), np.concatenate(diagnostics)


def test_a_member_driven_to_nan_is_quarantined_and_the_others_are_unchanged(tmp_path, noisy):
    sim = Simulation.from_case(noisy)
    sim.add_hook(PoisonMember(row=2, at=7))
    out = str(tmp_path / "run")
    summary = sim.run(out_dir=out, progress=False)
    assert summary["status"] == "quarantined" and summary["quarantined"] == [2]
    assert summary["member_status"]["2"] == "quarantined at step 8: non-finite state"
    assert all(summary["member_status"][m] == "ok" for m in "0134")
    assert summary["final_step"] == 30
    fields, diagnostics = _read(out), _read(out, "diagnostics.nc")
    assert list(fields["step"]) == [0, 10, 20, 30]
    assert fields["valid"][2].tolist() == [1, 0, 0, 0] and fields["valid"][[0, 1, 3, 4]].all()
    assert np.isnan(fields["vorticity"][2, 1:]).all() and np.isfinite(fields["vorticity"][2, 0]).all()
    assert diagnostics["valid"][2].tolist() == [1, 1, 0, 0, 0, 0, 0]  # steps 0, 5 | 10 ...
    keep, alone, energy = _without(noisy, tmp_path, rows=[2])
    assert np.array_equal(fields["vorticity"][keep], alone)
    assert np.array_equal(diagnostics["energy"][keep], energy)
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:  # the end's checkpoint is finite
        assert ck["quarantined"].tolist() == [False, False, True, False, False]


def test_a_member_outside_the_reference_energy_band_is_quarantined(tmp_path, noisy):
    reference = str(tmp_path / "reference")
    Simulation.from_case(noisy, {"ensemble.first_member": 100}).run(out_dir=reference, progress=False)
    overrides = {"reference.dir": reference, "monitor.reference_sigmas": 5.0}
    sim = Simulation.from_case(noisy, overrides)
    sim.state[1] *= 30.0  # 900 times the energy
    summary = sim.run(out_dir=str(tmp_path / "run"), progress=False)
    assert summary["quarantined"] == [1]
    assert summary["member_status"]["1"].startswith("quarantined at step 4: energy ")
    keep, alone, _ = _without(noisy, tmp_path, rows=[1])
    assert np.array_equal(_read(tmp_path / "run")["vorticity"][keep], alone)


def test_abort_stops_the_run_at_the_failure(tmp_path, noisy):
    sim = Simulation.from_case(noisy, {"monitor.on_failure": "abort"})
    sim.add_hook(PoisonMember(row=3, at=7))
    summary = sim.run(out_dir=str(tmp_path / "run"), progress=False)
    assert summary["status"] == "failed" and summary["final_step"] == 8
    assert summary["member_status"]["3"] == "non-finite state by step 8"
    assert summary["member_status"]["0"] == "aborted at step 8"
    assert not summary["quarantined"]


def test_a_quarantine_survives_a_restart(tmp_path, noisy):
    noisy["output"]["checkpoint_every"] = 10
    whole = Simulation.from_case(noisy)
    whole.add_hook(PoisonMember(row=4, at=3))
    whole.run(out_dir=str(tmp_path / "whole"), progress=False)
    stopped = Simulation.from_case(noisy)
    stopped.add_hook(PoisonMember(row=4, at=3))
    stopped.add_hook(SignalAt(17, signal.SIGTERM))
    out = str(tmp_path / "run")
    assert stopped.run(out_dir=out, progress=False)["status"] == "interrupted"
    summary = Simulation.from_case(noisy).run(out_dir=out, progress=False, resume=True)
    assert summary["resumed_from_step"] == 17 and summary["quarantined"] == [4]
    for name in ("fields.nc", "diagnostics.nc"):
        resumed, reference = _read(out, name), _read(tmp_path / "whole", name)
        for var in reference:
            assert np.array_equal(resumed[var], reference[var], equal_nan=True), (name, var)
    assert json.loads(open(os.path.join(out, "summary.json")).read())["member_status"]["4"].startswith(
        "quarantined at step 4")


def test_monitor_keys_are_checked(noisy):
    with pytest.raises(CaseError, match="monitor.quantity: navier_stokes2d has no diagnostic 'heat'"):
        Simulation.from_case(noisy, {"monitor.quantity": "heat", "monitor.bounds": [0.0, 1.0]})
    with pytest.raises(CaseError, match=r"monitor.bounds: expected \[low, high\] with low < high"):
        Simulation.from_case(noisy, {"monitor.bounds": [1.0, 0.0]})
    with pytest.raises(CaseError, match="monitor.reference_sigmas: needs reference.dir"):
        Simulation.from_case(noisy, {"monitor.reference_sigmas": 5.0})
    with pytest.raises(CaseError, match="monitor.on_failure: unknown value 'ignore'"):
        Simulation.from_case(noisy, {"monitor.on_failure": "ignore"})


def test_the_command_line_warns_about_quarantined_members_and_exits_0(tmp_path, noisy, capsys):
    energy = Simulation.from_case(noisy).diagnostics()["energy"]
    high = float(np.sort(energy)[2])  # members above the median energy leave the band at once (by step 4)
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(noisy))
    out = str(tmp_path / "run")
    assert main(["run", str(path), "--quiet", "--out", out, "--set", f"monitor.bounds=[0.0, {high}]"]) == 0
    err = capsys.readouterr().err
    failed = sorted(np.flatnonzero(energy > high).tolist())
    assert err.startswith("warning: members quarantined: {") and len(failed) == 2
    assert all(f"'{m}': 'quarantined at step 4: energy " in err for m in failed)
