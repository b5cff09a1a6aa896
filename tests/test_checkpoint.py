"""Checkpoints (Simulation.save_checkpoint / load_checkpoint): a run continued from one is
bit-identical to an uninterrupted run, with stochastic forcing, a stochastic plugin held
between calls and multistep history; non-finite states are never written."""
import os

import numpy as np
import pytest

from hybridsolver import CaseError, Simulation
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
