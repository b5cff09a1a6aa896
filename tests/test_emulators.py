"""Emulators (replace) and refiners (post_step) in the step loop, with the reference
plugins of ``plugins/reference``: exactness against the solver, member and batch
invariance of a stateful stochastic emulator, kill and resume, member subsets, windows
and swaps, device-resident rollouts, and the refusals of bad stateful artifacts."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tomli_w
from run_files import assert_same_run_files, read_netcdf

from hybridsolver import Simulation
from hybridsolver.case import read_toml
from hybridsolver.cli import main
from hybridsolver_plugins.classic.registry import backscatter, smagorinsky
from hybridsolver_plugins.reference.registry import band_refiner, linear_decay, stochastic_relaxation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINEAR_CASE = os.path.join(ROOT, "cases", "linear_decay64.toml")


def linear_case(plugins=(), **changes):
    """The raw case of cases/linear_decay64.toml (64^2, nu = 1e-2, drag 0.1, etdrk4, dt 1e-3)
    with ``plugins`` and ``{"section.key": value}`` changes."""
    raw = read_toml(LINEAR_CASE)
    raw["plugins"] = [dict(p) for p in plugins]
    for key, value in changes.items():
        section, name = key.split(".")
        raw[section][name] = value
    return raw


def _case_file(tmp_path, raw):
    path = str(tmp_path / "case.toml")
    with open(path, "w") as f:
        f.write(tomli_w.dumps(raw))
    return path


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---- acceptance 1: the exact linear emulator against the solver ------------------------------

@pytest.mark.parametrize("every", [1, 5])
def test_the_exact_linear_emulator_equals_etdrk4_on_the_linear_case(every):
    solver = Simulation.from_case(linear_case())
    solver.advance(1000)
    emulated = Simulation.from_case(linear_case([{"path": linear_decay, "every": every}]))
    emulated.advance(1000)
    assert emulated.hook_report()["linear_decay"]["calls"] == 1000 // every
    assert relative(emulated.state, solver.state) < 1e-12
    start = Simulation.from_case(linear_case()).state
    assert relative(emulated.state, start) > 0.2  # the flow did decay


def test_a_replace_window_equals_solver_emulator_solver_chained_by_hand():
    """With advection on, the emulator (linear part only) and the solver differ; the window
    [0.5, 1.0) hands the members to the emulator and back."""
    nonlinear = {"equation.advection": True}
    windowed = Simulation.from_case(linear_case([{"path": linear_decay, "every": 5, "start": 0.5, "stop": 1.0}],
                                                **nonlinear))
    windowed.advance(1500)
    solver = Simulation.from_case(linear_case(**nonlinear))
    solver.advance(500)
    emulator = Simulation.from_case(linear_case([{"path": linear_decay, "every": 5}], **nonlinear))
    emulator.state[...] = solver.state
    emulator.advance(500)
    solver.state[...] = emulator.state
    solver.advance(500)
    assert windowed.hook_report()["linear_decay"]["calls"] == 100
    assert relative(windowed.state, solver.state) < 1e-12
    plain = Simulation.from_case(linear_case(**nonlinear))
    plain.advance(1500)
    assert relative(windowed.state, plain.state) > 1e-3


# ---- acceptance 2: a stateful stochastic emulator ------------------------------------------

def stochastic_case(members, max_batch=None, first_member=0, workers=1, **changes):
    entry = {"path": stochastic_relaxation, "every": 2, "workers": workers}
    if max_batch:
        entry["max_batch"] = max_batch
    raw = linear_case([entry], **changes)
    raw["ensemble"] |= {"members": members, "first_member": first_member}
    return raw


def test_the_stateful_emulator_gives_a_member_the_same_bits_in_any_ensemble_and_batch():
    """Also with the chunks' calls run concurrently (``workers``): each chunk's rows of
    the output and of the member state land where they belong (the module is pointwise,
    so one torch thread gives the same bits as two)."""
    import torch

    runs = {}
    for members, max_batch, first, workers in [(6, 1, 0, 1), (6, 4, 0, 1), (6, 6, 0, 1), (1, None, 3, 1),
                                               (6, 1, 0, 2), (6, None, 0, 3), (1, None, 3, 2)]:
        sim = Simulation.from_case(stochastic_case(members, max_batch, first, workers))
        threads = torch.get_num_threads()
        sim.advance(40)
        row = 3 - first
        hook = sim.hooks[0]
        if workers > 1 and members == 6 and max_batch is None:
            assert hook.max_batch == 2  # the rows split evenly over the workers
        assert torch.get_num_threads() == threads  # one torch thread per call only while the workers run
        runs[(members, max_batch, workers)] = (sim.state[row].copy(),
                                               [s[row].numpy().copy() for s in hook.member_state])
        if members == 6:
            assert not np.array_equal(sim.state[0], sim.state[1])  # members get their own noise
            assert np.all(hook.member_state[1].numpy() == 20.0)  # the calls counter: 40 steps / every 2
    (state, plugin_state), *others = runs.values()
    for other_state, other_plugin_state in others:
        assert np.array_equal(other_state, state)
        assert all(np.array_equal(a, b) for a, b in zip(other_plugin_state, plugin_state))


def test_the_first_call_starts_the_memory_at_a_stationary_draw():
    sim = Simulation.from_case(stochastic_case(2))
    sim.advance(2)
    memory = sim.hooks[0].member_state[0].numpy()
    assert memory.std() == pytest.approx(1.0, rel=0.05)  # sigma * xi, not a * 0 + sqrt(1 - a^2) sigma xi


KILLER = """
import sys
tests, case, out, step, signum = sys.argv[1:]
sys.path.insert(0, tests)
from hybridsolver import Simulation
from signal_hook import SignalAt

sim = Simulation.from_case(case)
sim.add_hook(SignalAt(int(step), int(signum)))
sim.run(out_dir=out, progress=False)
"""


def _run_until_signal(case, out, step, signum):
    done = subprocess.run([sys.executable, "-c", KILLER, os.path.dirname(__file__), case, out, str(step),
                           str(int(signum))], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr







def test_the_stateful_emulator_killed_at_a_random_step_resumes_bit_identically(tmp_path):
    raw = stochastic_case(3)
    raw["time"]["steps"] = 60
    raw["output"] = {"fields_every": 10, "diagnostics_every": 4, "checkpoint_every": 8}  # jumps of 2 fit
    case = _case_file(tmp_path, raw)
    whole = str(tmp_path / "whole")
    Simulation.from_case(case).run(out_dir=whole, progress=False)
    kill = 2 * int(np.random.default_rng(18).integers(9, 30))  # a landing step of the jumps
    out = str(tmp_path / "killed")
    code, err = _run_until_signal(case, out, kill, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:
        assert int(ck["step"]) == kill // 8 * 8
        assert ck["plugin/stochastic_relaxation/state/calls"][0, 0] == kill // 8 * 4  # one call per 2 steps
    assert main(["run", case, "--resume", "--out", out, "--quiet"]) == 0
    assert_same_run_files(out, whole)
    with np.load(os.path.join(out, "checkpoint.npz")) as a, np.load(os.path.join(whole, "checkpoint.npz")) as b:
        assert sorted(a.files) == sorted(b.files) and "plugin/stochastic_relaxation/state/memory" in a.files
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_a_physical_emulator_stopped_by_sigterm_between_outputs_resumes_bit_identically(tmp_path):
    """SIGTERM at step 27 ends the device-resident segment there and checkpoints step 27; the
    checkpoint carries the device tensor, so the resumed run does not see the host copy's
    spectral round trip."""
    raw = stochastic_case(2)
    raw["plugins"][0]["every"] = 1
    raw["time"]["steps"] = 50
    raw["output"] = {"fields_every": 10, "diagnostics_every": 10}
    case = _case_file(tmp_path, raw)
    whole = str(tmp_path / "whole")
    Simulation.from_case(case).run(out_dir=whole, progress=False)
    out = str(tmp_path / "stopped")
    code, err = _run_until_signal(case, out, 27, signal.SIGTERM)
    assert code == 0, err
    with np.load(os.path.join(out, "checkpoint.npz")) as ck:
        assert int(ck["step"]) == 27 and ck["resident/chain"].shape == (2, 1, 64, 64)
    assert main(["run", case, "--resume", "--out", out, "--quiet"]) == 0
    assert_same_run_files(out, whole)


# ---- acceptance 3: member subsets, swaps, overlaps --------------------------------------------

@pytest.mark.parametrize("emulated", ["0:4", "4:8"])
def test_emulated_and_solved_members_equal_their_runs_alone(emulated):
    nonlinear = {"equation.advection": True}
    mixed_case = linear_case([{"path": linear_decay, "every": 2, "members": emulated}], **nonlinear)
    mixed_case["ensemble"]["members"] = 8
    mixed = Simulation.from_case(mixed_case)
    mixed.advance(21)  # the last step: a jump does not fit, the solver takes it
    lo = int(emulated.split(":")[0])
    for first, plugins in ((lo, [{"path": linear_decay, "every": 2}]), (4 - lo, [])):
        alone_case = linear_case(plugins, **nonlinear)
        alone_case["ensemble"] |= {"members": 4, "first_member": first}
        alone = Simulation.from_case(alone_case)
        alone.advance(21)
        assert np.array_equal(mixed.state[first:first + 4], alone.state)
    solver_rows = slice(4 - lo, 8 - lo)
    emulator_rows = slice(lo, lo + 4)
    reference = Simulation.from_case(linear_case(**nonlinear) | {"ensemble": {"members": 8}})
    reference.advance(21)
    assert np.array_equal(mixed.state[solver_rows], reference.state[solver_rows])
    assert relative(mixed.state[emulator_rows], reference.state[emulator_rows]) > 1e-4


def kolmogorov(plugins):
    raw = linear_case(plugins, **{"equation.advection": True, "equation.viscosity": 1e-3, "time.scheme": "cn_rk4",
                                  "time.dt": 2e-3})
    raw["equation"]["forcing"] = {"type": "kolmogorov", "wavenumber": 4, "amplitude": 1.0}
    raw["ensemble"]["members"] = 2
    return raw


def test_closure_a_then_closure_b_equals_the_two_runs_chained_through_a_checkpoint(tmp_path):
    swapped = Simulation.from_case(kolmogorov([{"path": smagorinsky, "every": 5, "stop": 0.5},
                                               {"path": backscatter, "every": 5, "start": 0.5}]))
    swapped.advance(400)
    first = Simulation.from_case(kolmogorov([{"path": smagorinsky, "every": 5}]))
    first.advance(250)
    path = str(tmp_path / "checkpoint.npz")
    first.save_checkpoint(path)
    second = Simulation.from_case(kolmogorov([{"path": backscatter, "every": 5}]))
    with np.load(path) as ck:
        second.state[...] = ck["state"]
        second.step = int(ck["step"])
    second.advance(150)
    assert np.array_equal(swapped.state, second.state)
    assert swapped.hook_report()["smagorinsky"]["calls"] == 50 and swapped.hook_report()["backscatter"]["calls"] == 30
    only_a = Simulation.from_case(kolmogorov([{"path": smagorinsky, "every": 5}]))
    only_a.advance(400)
    assert not np.array_equal(swapped.state, only_a.state)


def test_two_replace_plugins_on_one_member_at_once_exit_2_naming_both(tmp_path, capsys):
    raw = linear_case([{"path": linear_decay, "members": "0:3", "name": "a"},
                       {"path": linear_decay, "members": "2:4", "name": "b", "start": 0.2}])
    assert main(["run", _case_file(tmp_path, raw), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: plugins.0 ('a') and plugins.1 ('b') both replace members 2..2 from t = 0.2 to the end: "
                   "a member takes one replace plugin at a time (give them disjoint members or start/stop windows)")
    raw["plugins"][0]["stop"] = 0.2  # one after the other: accepted
    assert main(["run", _case_file(tmp_path, raw), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "time.steps=300"]) == 0


# ---- refiners and device-resident rollouts ---------------------------------------------------

BAND = {"k_min": 2.0, "k_max": 6.0}


def refined_case(resident=True, **output):
    raw = linear_case([{"path": linear_decay, "every": 1}, {"path": band_refiner, "sampler": BAND}])
    raw["runtime"] = {"resident": resident}
    raw["output"] |= output
    return raw


def test_the_band_refiner_projects_each_update_onto_its_band():
    sim = Simulation.from_case(refined_case())
    w0 = sim.state.copy()
    sim.advance(200)
    k2 = sim.grid.k2
    band = (np.sqrt(k2) >= BAND["k_min"]) & (np.sqrt(k2) < BAND["k_max"])
    exact = np.where(band, np.exp(-(1e-2 * k2 + 0.1) * 0.2) * w0, w0)
    assert relative(sim.state, exact) < 1e-12
    assert sim.transfer_report()["host_round_trips"] == 1


def test_resident_rollouts_copy_to_the_host_only_at_outputs_and_monitors(tmp_path):
    cadence = {"fields_every": 100, "diagnostics_every": 50}
    runs = {}
    for resident in (True, False):
        raw = refined_case(resident, **cadence)
        raw["monitor"] = {"every": 50}
        summary = Simulation.from_case(raw).run(out_dir=str(tmp_path / str(resident)), progress=False)
        runs[resident] = summary
    transfers = runs[True]["transfers"]
    # the untimed first step, then one segment per 50 steps (outputs and monitor checks)
    assert transfers["resident_segments"] == 21 and transfers["resident_steps"] == 1000
    assert transfers["host_round_trips"] == 21
    assert runs[False]["transfers"]["host_round_trips"] == 2000  # one per call of each plugin
    assert runs[True]["plugins"]["band_refiner"]["calls"] == 1000
    for name in ("fields.nc", "diagnostics.nc"):  # a spectral chain: the same bits either way
        a, b = (read_netcdf(str(tmp_path / str(r) / name)) for r in (True, False))
        assert all(np.array_equal(a[k], b[k]) for k in a if k != "time")
    with open(tmp_path / "True" / "summary.json") as f:
        assert json.load(f)["transfers"]["host_round_trips"] == 21


# ---- acceptance 4: refusals of bad stateful artifacts ----------------------------------------

def _forge(module, manifest, path):
    """Write an artifact without export's checks (to test what the host refuses)."""
    import io

    import torch

    from hybridsolver.plugin import content_sha256

    scripted = torch.jit.script(module)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={"hybridsolver.json": json.dumps(manifest)})
    manifest = manifest | {"sha256": content_sha256(buffer.getvalue())}
    torch.jit.save(scripted, path, _extra_files={"hybridsolver.json": json.dumps(manifest)})
    return path


def _reference_manifest(name):
    from hybridsolver.case import load_case
    from hybridsolver_plugins.reference.export import manifests

    return manifests(load_case(LINEAR_CASE))[name][1]


BAD_STATE_MODULES = '''
import math
from typing import Dict, List, Tuple
import torch
from torch import nn


class WrongShape(nn.Module):
    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return x, [state[0][:, :, :8], state[1]]


class WrongDtype(nn.Module):
    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return x, [state[0].float(), state[1]]


class NonFinite(nn.Module):
    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return x, [state[0], state[1] + math.inf]


class Stateless(nn.Module):
    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return x
'''


@pytest.fixture(scope="module")
def bad_modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_modules")
    (folder / "bad_state_modules.py").write_text(BAD_STATE_MODULES)
    sys.path.insert(0, str(folder))
    import bad_state_modules
    yield bad_state_modules
    sys.path.remove(str(folder))


@pytest.mark.parametrize("module, message", [
    ("WrongShape", "dry run returned state 'memory' of shape (4, 1, 8, 64), manifest expects (4, 1, 64, 64)"),
    ("WrongDtype", "dry run returned state 'memory' of dtype float32, manifest expects float64"),
    ("NonFinite", "dry run returned state 'calls' with non-finite values"),
    ("Stateless", "manifest 'state' lists ['memory', 'calls'] but the module's forward takes (x, noise, options)"),
    ("unknown key", "manifest key 'states' unknown"),
])
def test_bad_stateful_artifacts_are_refused_before_step_0(tmp_path, capsys, bad_modules, module, message):
    manifest = _reference_manifest("stochastic_relaxation")
    if module == "unknown key":
        manifest["states"] = manifest.pop("state")
        module = "Stateless"
    path = _forge(getattr(bad_modules, module)(), manifest, str(tmp_path / "bad.pt"))
    raw = linear_case([{"path": path}])
    out = tmp_path / "run"
    assert main(["run", _case_file(tmp_path, raw), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("error: plugins.0")
    assert not (out / "fields.nc").exists()


def test_export_refuses_a_stateless_forward_with_state_and_unknown_keys(tmp_path, bad_modules):
    from hybridsolver.plugin import PluginError, export

    manifest = _reference_manifest("stochastic_relaxation")
    with pytest.raises(PluginError, match=r"manifest 'state' lists \['memory', 'calls'\]"):
        export(bad_modules.Stateless(), manifest, str(tmp_path / "a.pt"))
    with pytest.raises(PluginError, match="manifest key 'sate' unknown"):
        export(bad_modules.Stateless(), manifest | {"sate": []}, str(tmp_path / "b.pt"))
    bad_entry = manifest | {"state": [{"name": "memory", "shape": [1, 64, 64], "dtype": "int8"}]}
    with pytest.raises(PluginError, match="state.memory.dtype"):
        export(bad_modules.WrongShape(), bad_entry, str(tmp_path / "c.pt"))


def test_inspect_shows_the_state(capsys):
    assert main(["plugins", "inspect", "stochastic_relaxation"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("state per member: memory [1, 64, 64] float64, calls [1] float64")


@pytest.mark.parametrize("at", [10, 30])
def test_a_checkpoint_before_or_inside_a_stateful_window_resumes_bit_identically(tmp_path, at):
    """The emulator acts for 0.02 <= t < 0.05 (steps 20-49): a checkpoint at step 10 must
    keep its first call ahead (zeros, first = 1), one at step 30 its memory and the
    device-resident rollout's tensor (a physical emulator: the host's copy of the state
    went through rfft, the tensor did not)."""
    raw = stochastic_case(2)
    raw["plugins"][0] |= {"start": 0.02, "stop": 0.05}
    whole = Simulation.from_case(raw)
    whole.advance(70)
    first = Simulation.from_case(raw)
    first.advance(at)
    path = str(tmp_path / "checkpoint.npz")
    first.save_checkpoint(path)
    resumed = Simulation.from_case(raw)
    resumed.load_checkpoint(path)
    resumed.advance(70 - at)
    assert np.array_equal(resumed.state, whole.state)
    assert whole.hook_report()["stochastic_relaxation"]["calls"] == 15
    assert np.all(whole.hooks[0].member_state[1].numpy() == 15.0)


def test_dask_chunks_merge_the_plugin_state_along_members(tmp_path):
    from hybridsolver.distributed import merge_checkpoints

    whole = Simulation.from_case(stochastic_case(4))
    whole.advance(6)
    paths = []
    for first in (0, 2):
        part = Simulation.from_case(stochastic_case(2, first_member=first))
        part.advance(6)
        paths.append(str(tmp_path / f"part{first}.npz"))
        part.save_checkpoint(paths[-1])
    merged = str(tmp_path / "merged.npz")
    merge_checkpoints(paths, merged)
    reference = str(tmp_path / "whole.npz")
    whole.save_checkpoint(reference)
    with np.load(merged) as a, np.load(reference) as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
