"""Checkpoints (Simulation.save_checkpoint / load_checkpoint): a run continued from one is
bit-identical to an uninterrupted run, with stochastic forcing, a stochastic plugin held
between calls and multistep history; non-finite states are never written.  Run
directories: a run killed (SIGKILL) or stopped (SIGTERM) at a random step and continued
with ``--resume`` ends bit-identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import tomli_w
from run_files import assert_same_run_files, read_netcdf

from hybridsolver import CaseError, Simulation, load_case
from hybridsolver.cli import main
from hybridsolver_plugins.classic.registry import backscatter


@pytest.fixture
def stochastic(case):
    """64^2 on the classic artifacts' grid: Q-Wiener forcing and the stochastic backscatter
    closure called every 5 steps (held in between), 3 members."""
    case["grid"]["shape"] = [64, 64]
    case["time"]["dt"] = 2e-3
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5, "alpha": 0.01}
    case["ensemble"]["members"] = 3
    case["plugins"] = [{"path": backscatter, "every": 5}]
    return case


@pytest.mark.parametrize("scheme", ["ab3", "cn_rk4"])
def test_a_run_continued_from_a_checkpoint_is_bit_identical(tmp_path, stochastic, scheme):
    overrides = {"time.scheme": scheme}
    whole = Simulation.from_case(stochastic, overrides)
    whole.advance(23)
    first = Simulation.from_case(stochastic, overrides)
    first.advance(13)  # mid-hold of the closure (called at 10, next at 15) and mid-AB3 history
    path = str(tmp_path / "checkpoint.npz")
    first.save_checkpoint(path)
    resumed = Simulation.from_case(stochastic, overrides)
    resumed.load_checkpoint(path)
    assert resumed.step == 13
    resumed.advance(10)
    assert np.array_equal(resumed.state, whole.state)
    fresh = Simulation.from_case(stochastic, overrides)  # without the checkpoint the run differs
    fresh.state[...] = first.state
    fresh.step = first.step
    fresh.advance(10)
    assert not np.array_equal(fresh.state, whole.state)


def test_a_non_finite_state_is_never_written(tmp_path, case):
    sim = Simulation.from_case(case)
    sim.advance(2)
    path = str(tmp_path / "checkpoint.npz")
    sim.save_checkpoint(path)
    before = open(path, "rb").read()
    sim.state[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        sim.save_checkpoint(path)
    assert open(path, "rb").read() == before and not os.path.exists(path + ".tmp.npz")


def test_a_checkpoint_of_another_ensemble_is_refused(tmp_path, case):
    sim = Simulation.from_case(case)
    path = str(tmp_path / "checkpoint.npz")
    sim.save_checkpoint(path)
    with pytest.raises(CaseError, match="checkpoint state shape"):
        Simulation.from_case(case, {"ensemble.members": 2}).load_checkpoint(path)


# ---- run directories: checkpoint cadence, signals, --resume ---------------------------------

KILLER = """
import sys
tests, case, out, step, signum, resume = sys.argv[1:]
sys.path.insert(0, tests)
from hybridsolver import Simulation
from signal_hook import SignalAt

sim = Simulation.from_case(case)
sim.add_hook(SignalAt(int(step), int(signum)))
sim.run(out_dir=out, progress=False, resume=resume == "resume")
"""


def _run_until_signal(case_path, out, step, signum, resume=False):
    """Run (or resume) ``case_path`` into ``out`` in a subprocess that sends itself
    ``signum`` when it reaches ``step``; returns the process's return code."""
    args = [sys.executable, "-c", KILLER, os.path.dirname(__file__), case_path, out, str(step), str(int(signum)),
            "resume" if resume else "new"]
    return subprocess.run(args, capture_output=True, text=True, timeout=300).returncode


@pytest.fixture
def restart_case(tmp_path, stochastic):
    """The stochastic case as a file: 60 steps, fields every 10, diagnostics every 5, a
    checkpoint every 8 steps (so records after a checkpoint exist when a run dies)."""
    stochastic["time"]["steps"] = 60
    stochastic["output"] = {"fields_every": 10, "diagnostics_every": 5, "checkpoint_every": 8}
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(stochastic))
    return str(path)


def test_a_run_killed_twice_at_random_steps_resumes_bit_identically(tmp_path, restart_case):
    whole = str(tmp_path / "whole")
    Simulation.from_case(restart_case).run(out_dir=whole, progress=False)
    first, second = sorted(np.random.default_rng(2026).choice(np.arange(9, 60), 2, replace=False))
    out = str(tmp_path / "killed")
    assert _run_until_signal(restart_case, out, first, signal.SIGKILL) == -signal.SIGKILL
    # what was written before the kill is readable: records up to the kill, the checkpoint before it
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:
        assert int(ck["step"]) == first // 8 * 8
    assert read_netcdf(os.path.join(out, "fields.nc"))["step"].max() <= first
    assert read_netcdf(os.path.join(out, "diagnostics.nc"))["step"].max() <= first
    assert load_case(os.path.join(out, "case.toml")).data == load_case(restart_case).data
    assert _run_until_signal(restart_case, out, second, signal.SIGKILL, resume=True) == -signal.SIGKILL
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:
        assert int(ck["step"]) == second // 8 * 8
    assert main(["run", restart_case, "--resume", "--out", out, "--quiet"]) == 0
    assert_same_run_files(out, whole)
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    assert summary["status"] == "ok" and summary["resumed_from_step"] == second // 8 * 8


def test_sigterm_checkpoints_the_current_step_and_the_run_resumes(tmp_path, restart_case):
    whole = str(tmp_path / "whole")
    Simulation.from_case(restart_case).run(out_dir=whole, progress=False)
    out = str(tmp_path / "stopped")
    assert _run_until_signal(restart_case, out, 27, signal.SIGTERM) == 0  # the Python API returns normally
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert summary["final_step"] == 27
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:
        assert int(ck["step"]) == 27
    assert read_netcdf(os.path.join(out, "diagnostics.nc"))["step"].max() == 25  # flushed before the checkpoint
    assert main(["run", restart_case, "--resume", "--out", out, "--quiet"]) == 0
    assert_same_run_files(out, whole)


def test_resume_refuses_another_case_and_a_directory_without_checkpoint(tmp_path, restart_case, capsys):
    out = str(tmp_path / "run")
    assert main(["run", restart_case, "--out", out, "--quiet", "--set", "time.steps=8"]) == 0
    assert main(["run", restart_case, "--resume", "--out", out, "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {out}/case.toml: the run was started with time.steps = 8 "
                                               "(now 60); resume it with the same case")
    empty = str(tmp_path / "empty")
    assert main(["run", restart_case, "--resume", "--out", empty, "--quiet"]) == 2
    assert "checkpoint.npz: no checkpoint to resume from" in capsys.readouterr().err


def test_a_run_started_before_a_key_existed_resumes_with_its_default(tmp_path, restart_case):
    """A run directory whose case.toml lacks a key a later version added (here time.start,
    default 0) resumes: both cases are compared once resolved, the default filled in."""
    whole = str(tmp_path / "whole")
    Simulation.from_case(restart_case).run(out_dir=whole, progress=False)
    out = str(tmp_path / "old")
    assert _run_until_signal(restart_case, out, 30, signal.SIGKILL) == -signal.SIGKILL
    stored = tomllib.loads(open(os.path.join(out, "case.toml")).read())
    del stored["time"]["start"]
    with open(os.path.join(out, "case.toml"), "w") as f:
        f.write(tomli_w.dumps(stored))
    assert main(["run", restart_case, "--resume", "--out", out, "--quiet"]) == 0
    assert_same_run_files(out, whole)


def test_a_checkpoint_with_non_finite_history_is_never_written(tmp_path, case):
    sim = Simulation.from_case(case, {"time.scheme": "ab3"})
    sim.advance(3)
    sim.stepper.history[1][0, 2, 2] = np.inf
    with pytest.raises(ValueError, match="stepper/history is not finite"):
        sim.save_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert not os.path.exists(tmp_path / "checkpoint.npz")
