"""The scripts of examples/ run on small settings and do what their docstrings say."""
import importlib.util
import os

import numpy as np

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")


def example(name):
    """The module examples/NAME.py."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_hook_closure_removes_enstrophy():
    enstrophy = example("python_hook_closure").main(["--steps", "100", "--nu4", "1e-4"])
    assert enstrophy["hyperviscosity"] < 0.99 * enstrophy["no closure"]


def test_export_own_closure_runs_the_traced_module(tmp_path):
    report = example("export_own_closure").main(["--out", str(tmp_path / "cnn.pt"), "--steps", "10"])
    assert report["calls"] == 2 and os.path.isfile(tmp_path / "cnn.pt")


def test_closure_in_pyqg_dissipates_energy():
    energies = example("closure_in_pyqg").main(["--days", "20"])
    assert 0 < energies["qg_smagorinsky"] < energies["pyqg alone"]


def test_score_ensemble_with_xarray(tmp_path):
    scores = example("score_ensemble_xarray").main(["--out", str(tmp_path), "--steps", "200", "--members", "4"])
    assert scores["rmse"].sizes["time"] == 11 and np.isfinite(scores["crps"]) and scores["spread_skill"] > 0
    assert float(scores["spread"][0]) == 0.0 < float(scores["spread"][-1])  # members start from one state


def test_spinup_then_emulator_matches_the_solver():
    assert example("spinup_then_emulator").main(["--spin-steps", "50", "--steps", "100"]) < 1e-10


def test_cylinder_mean_flow_stops_at_the_body(capsys):
    case = os.path.join(EXAMPLES, os.pardir, "cases", "cylinder_re100.toml")
    example("cylinder_mean_flow").main([case, "--start", "0.5", "--end", "1.0", "--set", "grid.shape=[160,224]"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("t in [0.5, 1]: St")
    at_body = next(line for line in lines if line.split()[0] == "+0.00")
    assert float(at_body.split()[-1]) < 0.2 < float(at_body.split()[1])  # centreline inside the body, edge outside


def test_cylinder_street_plots_a_generated_snapshot(tmp_path):
    from hybridsolver.datasets import generate

    case = os.path.join(EXAMPLES, os.pardir, "cases", "cylinder_re160.toml")
    wake = {"grid.shape": [32, 288], "time.dt": 0.002, "time.t_end": 0.06, "output.fields_every": 3,
            "dataset.split_times": [0.02, 0.04], "dataset.window_shape": [8, 32],
            "dataset.window_spacing": [0.125, 0.125], "dataset.window_start": [-0.4375, -0.4375]}
    test_split = generate(case, str(tmp_path / "data"), wake, progress=False)[2]
    example("cylinder_street").main([test_split, "--out", str(tmp_path / "street.png")])
    assert os.path.getsize(tmp_path / "street.png") > 10_000


def test_ensemble_vs_truth_plots_the_main_job(tmp_path):
    from hybridsolver import Simulation

    case = os.path.join(EXAMPLES, os.pardir, "cases", "kolmogorov64_lcdm.toml")
    Simulation.from_case(case, {"time.t_end": 0.01, "ensemble.members": 2}).run(str(tmp_path / "run"),
                                                                                 progress=False)
    error = example("ensemble_vs_truth").main([str(tmp_path / "run"), "--out", str(tmp_path / "main.png")])
    assert error.shape == (2,) and (error < 0.05).all()  # 0.01 time units after the truth at t = 30
    assert os.path.getsize(tmp_path / "main.png") > 10_000


def test_betaplane_zonal_jets_recovers_a_known_zonal_flow(tmp_path):
    jets = example("betaplane_zonal_jets")
    y = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    vorticity = np.broadcast_to((4 * np.sin(2 * y))[:, None], (64, 32))  # psi = sin 2y: u = 2 cos 2y
    np.testing.assert_allclose(jets.zonal_mean_u(vorticity, 2 * np.pi), 2 * np.cos(2 * y), atol=1e-12)
    from hybridsolver import Simulation

    case = os.path.join(EXAMPLES, os.pardir, "cases", "betaplane_jets256.toml")
    Simulation.from_case(case, {"grid.shape": [64, 64], "time.dt": 1e-3, "time.steps": 20,
                                "output.fields_every": 10}).run(str(tmp_path / "run"), progress=False)
    time, u_bar = jets.main([str(tmp_path / "run"), "--out", str(tmp_path / "jets.png")])
    assert u_bar.shape == (3, 64) and os.path.getsize(tmp_path / "jets.png") > 10_000
