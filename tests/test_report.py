"""hybridsolver report: scores against a reference (equal to the uq functions applied by
hand), common times of runs written at different cadences, every figure rendered and
linked from index.html, and bad input (exit 2, one line naming the file or key)."""
import copy
import os
import shutil

import netCDF4
import numpy as np
import pytest
import tomli_w
import xarray as xr

from hybridsolver import Simulation, stability, uq
from hybridsolver.case import CaseError, load_case
from hybridsolver.cli import main
from hybridsolver.datasets import generate
from hybridsolver.report import FIGURES, SPECTRUM_FLOOR, common_times, load_reference, load_run, report
from hybridsolver.report import scores as score_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRUTH_FIGURES = [name for name, _, needs_truth in FIGURES if needs_truth]


def _ensemble_case(case):
    """4 members from the same Taylor-Green start, parted by stochastic forcing; 40 steps."""
    case["initial_condition"] = {"type": "taylor_green"}
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5}
    case["time"]["steps"] = 40
    case["ensemble"]["members"] = 4
    case["output"] = {"fields_every": 10, "diagnostics_every": 5}
    return case


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An ensemble run (fields every 10 steps) made from a case file whose [reference]
    points at "reference" relative to its folder, and that reference run: members 100
    and 101 of the same case, fields every 15 steps (common times 0, 0.03, 0.04)."""
    from conftest import BASE_CASE

    folder = tmp_path_factory.mktemp("runs")
    raw = _ensemble_case(copy.deepcopy(BASE_CASE))
    Simulation.from_case(raw, {"ensemble.first_member": 100, "ensemble.members": 2,
                               "output.fields_every": 15}).run(out_dir=str(folder / "reference"), progress=False)
    case_file = folder / "ensemble.toml"
    text = load_case(raw).to_toml() + '\n[reference]\ndir = "reference"\nmember = 1\n'
    case_file.write_text(text)
    Simulation.from_case(str(case_file)).run(out_dir=str(folder / "ensemble"), progress=False)
    return {"ensemble": str(folder / "ensemble"), "reference": str(folder / "reference"), "folder": folder}


def _field(path, name="vorticity"):
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds[name][...]), np.asarray(ds["time"][:])


def test_scores_equal_uq_by_hand(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the case's reference.dir is found from the case file's folder
    report(runs["ensemble"])
    scores = xr.open_dataset(os.path.join(runs["ensemble"], "scores.nc"), decode_times=False)
    ens, t_ens = _field(os.path.join(runs["ensemble"], "fields.nc"))
    ref, t_ref = _field(os.path.join(runs["reference"], "fields.nc"))
    assert scores.attrs["reference_member"] == 101
    np.testing.assert_allclose(scores["time"], [0.0, 0.03, 0.04], rtol=1e-12)
    i, j = 3, 2  # t = 0.03 in the ensemble's and the reference's records
    assert t_ens[i] == pytest.approx(0.03) and t_ref[j] == pytest.approx(0.03)
    members, truth = ens[:, i], ref[1, j]
    expected = {"rmse": np.sqrt(np.mean((members.mean(axis=0) - truth) ** 2)),
                "spread": np.sqrt(np.mean(np.var(members, axis=0, ddof=1))),
                "spread_skill": uq.spread_skill(members, truth), "crps": np.mean(uq.crps(members, truth)),
                "coverage95": np.mean((truth >= np.quantile(members, 0.025, axis=0))
                                      & (truth <= np.quantile(members, 0.975, axis=0))),
                "wasserstein1": uq.wasserstein1(members, ref[:, j])}
    for name, value in expected.items():
        assert scores[name].sel(time=0.03, method="nearest").item() == pytest.approx(value, rel=1e-12, abs=0), name
    assert 0 < expected["spread"] and 0 < expected["rmse"]
    assert np.isnan(scores["spread_skill"][0])  # identical members at t = 0: no ratio
    # the rank histogram: times after t = 0 (t = 0 has identical members and no spread)
    counts = uq.rank_histogram(ens[:, 3], ref[1, 2]) + uq.rank_histogram(ens[:, 4], ref[1, 3])
    np.testing.assert_array_equal(scores["rank_histogram"], counts)
    assert scores["rank_histogram"].attrs["times"] == 2 and counts.sum() == 2 * 32 * 32
    # log spectral RMSE of the mean energy spectra at a common diagnostics time, and the autocorrelation
    with netCDF4.Dataset(os.path.join(runs["ensemble"], "diagnostics.nc")) as a, \
            netCDF4.Dataset(os.path.join(runs["reference"], "diagnostics.nc")) as b:
        k = a["k"][:]
        mean, truth = a["energy_spectrum"][:, 6].mean(axis=0), b["energy_spectrum"][:, 6].mean(axis=0)
        energy = np.asarray(a["energy"][:])
    keep = (k > 0) & (mean > SPECTRUM_FLOOR * mean.max()) & (truth > SPECTRUM_FLOOR * truth.max())
    assert scores["spectral_rmse"][6].item() == pytest.approx(uq.spectral_rmse(mean[keep], truth[keep], log=True),
                                                               rel=1e-12)
    np.testing.assert_allclose(scores["energy_autocorrelation"], uq.autocorrelation(energy, 4), rtol=1e-12)
    assert scores["lag"].values[-1] == pytest.approx(0.02)
    # rollout scores: the band of the reference's energy (all members and records, mean ± 5 population std, as
    # monitor.reference_sigmas) and C(tau), R(t) of the fields (hybridsolver.stability, tested in test_stability)
    with netCDF4.Dataset(os.path.join(runs["reference"], "diagnostics.nc")) as b:
        ref_energy = np.asarray(b["energy"][:])
    low, high = ref_energy.mean() - 5 * ref_energy.std(), ref_energy.mean() + 5 * ref_energy.std()
    assert scores["exit_step"].attrs["band_low"] == pytest.approx(low, rel=1e-12)
    assert scores["exit_step"].attrs["band_high"] == pytest.approx(high, rel=1e-12)
    expected = [next((int(s) for s, v in zip(scores["survival_step"].values, row) if not low <= v <= high), -1)
                for row in energy]
    np.testing.assert_array_equal(scores["exit_step"], expected)
    np.testing.assert_array_equal(scores["survival_step"], np.arange(0, 41, 5))  # diagnostics every 5 steps
    np.testing.assert_allclose(scores["correlation"], stability.spatiotemporal_correlation(ens, range(3)),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores["rate_of_change"], stability.rate_of_change(ens, 0.01), rtol=1e-9)
    # the reference's records t = 0, 0.015, 0.03 and a last one at t_end = 0.04: C(tau) on the first 3, R(t) on all
    assert scores["reference_correlation"].attrs["records"] == 3
    np.testing.assert_allclose(scores["reference_correlation"],
                               stability.spatiotemporal_correlation(ref[:, :3], range(2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores["reference_rate_of_change"], stability.rate_of_change(ref, np.diff(t_ref)),
                               rtol=1e-12)


def test_common_times_tolerate_round_off():
    a = np.arange(11) * 0.1  # 0.30000000000000004, ...
    b = np.array([0.0, 0.3, 0.5, 0.75, 1.0])
    ia, ib = common_times(a, b)
    np.testing.assert_array_equal(ia, [0, 3, 5, 10])
    np.testing.assert_array_equal(ib, [0, 1, 2, 4])
    assert common_times(a, b + 1e-6)[0].tolist() == []


def test_valid_mask_leaves_members_out(runs, tmp_path):
    run = str(tmp_path / "ensemble")
    shutil.copytree(runs["ensemble"], run)
    with netCDF4.Dataset(os.path.join(run, "fields.nc"), "a") as ds:
        if "valid" not in ds.variables:
            ds.createVariable("valid", "i1", ("member", "time"))[:] = 1
        ds["valid"][2, 3] = 0  # member 2 quarantined at t = 0.03
    fields, diagnostics = load_run(run)
    scores = score_run(fields, diagnostics, load_reference(runs["reference"], fields, member=0))
    ens, _ = _field(os.path.join(run, "fields.nc"))
    ref, _ = _field(os.path.join(runs["reference"], "fields.nc"))
    members = ens[[0, 1, 3], 3]
    assert scores["members"].values.tolist() == [4, 3, 4]
    assert scores["crps"][1].item() == pytest.approx(np.mean(uq.crps(members, ref[0, 2])), rel=1e-12)
    assert scores["spread_skill"][1].item() == pytest.approx(uq.spread_skill(members, ref[0, 2]), rel=1e-12)
    assert scores["rank_histogram"].attrs["times"] == 1  # t = 0.03 lacks a member


def test_report_renders_every_figure(runs, capsys):
    assert main(["report", runs["ensemble"], "--reference", runs["reference"], "--member", "1"]) == 0
    index = capsys.readouterr().out.strip()
    assert index == os.path.join(runs["ensemble"], "report", "index.html")
    html = open(index).read()
    import matplotlib.image

    for name, _, _ in FIGURES:
        path = os.path.join(runs["ensemble"], "report", name)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, name
        assert os.path.getsize(path) > 5000, name
        assert np.std(matplotlib.image.imread(path)[..., :3]) > 0.05, f"{name} is blank"
        assert f"<a href='{name}'>" in html and f"<img src='{name}'" in html, name
    assert "Not made" not in html
    assert "[reference]" in html and "member = 1" in html  # case.toml, HTML-escaped in a <pre>
    assert "spread_skill" in html and "ms/step" in html


def test_report_without_reference(runs):
    paths = report(runs["reference"])  # its case has no [reference]
    html = open(paths[-1]).read()
    for name in TRUTH_FIGURES:
        assert not os.path.exists(os.path.join(runs["reference"], "report", name))
        assert f"<li>{name}: it needs a reference" in html
    made = [os.path.basename(p) for p in paths if p.endswith(".png")]
    assert made == [name for name, _, needs_truth in FIGURES if not needs_truth]
    scores = xr.open_dataset(os.path.join(runs["reference"], "scores.nc"), decode_times=False)
    assert "rmse" not in scores and scores["spread"].shape == (4,) and scores["spread"][-1] > 0


def test_reference_truth_file_from_generate(runs, tmp_path):
    """A stored truth dataset (float32, members 2000000 and 2000001) as the reference."""
    from conftest import BASE_CASE

    case = tmp_path / "truth.toml"
    raw = _ensemble_case(copy.deepcopy(BASE_CASE))
    raw["output"]["fields_every"] = 20
    raw["dataset"] = {"train": 0, "validation": 0, "test": 2}
    case.write_text(load_case(raw).to_toml())
    generate(str(case), str(tmp_path / "data"), progress=False)
    truth_file = str(tmp_path / "data" / "test.nc")
    fields, diagnostics = load_run(runs["ensemble"])
    scores = score_run(fields, diagnostics, load_reference(truth_file, fields))
    np.testing.assert_allclose(scores["time"], [0.0, 0.02, 0.04], rtol=1e-12)
    ens, _ = _field(os.path.join(runs["ensemble"], "fields.nc"))
    truth, _ = _field(truth_file)
    assert scores["crps"][2].item() == pytest.approx(np.mean(uq.crps(ens[:, 4], truth[0, 2].astype(float))),
                                                     rel=1e-12)
    assert "spectral_rmse" not in scores  # a truth file has no spectra


def _error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_run_dir_and_fields(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in _error_line(capsys)
    assert main(["report", str(tmp_path)]) == 2
    assert str(tmp_path / "fields.nc") in _error_line(capsys)
    assert main(["report", str(tmp_path), "--member", "x"]) == 2
    assert "--member" in _error_line(capsys)


def test_bad_references(runs, case, tmp_path, capsys):
    case["grid"]["shape"] = [16, 16]
    Simulation.from_case(case).run(out_dir=str(tmp_path / "coarse"), progress=False)
    assert main(["report", runs["ensemble"], "--reference", str(tmp_path / "coarse")]) == 2
    err = _error_line(capsys)
    assert str(tmp_path / "coarse" / "fields.nc") in err and "(16, 16)" in err and "(32, 32)" in err
    shifted = str(tmp_path / "shifted.nc")
    shutil.copy(os.path.join(runs["reference"], "fields.nc"), shifted)
    with netCDF4.Dataset(shifted, "a") as ds:
        ds["time"][:] = ds["time"][:] + 1.0
    assert main(["report", runs["ensemble"], "--reference", shifted]) == 2
    err = _error_line(capsys)
    assert shifted in err and "no time in common" in err
    assert main(["report", runs["ensemble"], "--reference", runs["reference"], "--member", "2"]) == 2
    assert "no reference member row 2" in _error_line(capsys)
    assert main(["report", runs["ensemble"], "--reference", str(tmp_path / "absent")]) == 2
    assert str(tmp_path / "absent") in _error_line(capsys)


@pytest.mark.parametrize("section, message", [
    ({"dir": "a", "path": "b.nc"}, "reference.dir: give exactly one"),
    ({"member": 1}, "reference.dir: give exactly one"),
    ({"dir": "a", "member": -1}, "reference.member"),
    ({"dir": "a", "member": "first"}, "reference.member"),
    ({"file": "a"}, "reference.file: unknown key"),
    ({"dir": 3}, "reference.dir"),
])
def test_reference_section_validation(case, section, message):
    case["reference"] = section
    with pytest.raises(CaseError, match=message):
        load_case(case)


def test_reference_section_defaults(case):
    assert "reference" not in load_case(case).data
    case["reference"] = {"path": "data/test.nc"}
    assert load_case(case).data["reference"] == {"path": "data/test.nc", "member": 0}


def test_cli_refuses_both_dir_and_path(case, tmp_path, capsys):
    path = tmp_path / "both.toml"
    case["reference"] = {"dir": "runs/a", "path": "data/test.nc"}
    path.write_text(tomli_w.dumps(case))
    assert main(["validate", str(path)]) == 2
    err = _error_line(capsys)
    assert str(path) in err and "reference.dir: give exactly one of reference.dir" in err
