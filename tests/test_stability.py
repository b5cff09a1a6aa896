"""hybridsolver.stability (exit steps from a band, survival, C(tau), R(t)) against direct
loop-based computations, and the rollout scores and figures of ``hybridsolver report`` on
small synthetic run directories written here (exit steps known by construction)."""
import os
import shutil

import netCDF4
import numpy as np
import pytest
import xarray as xr

from hybridsolver import stability
from hybridsolver.cli import main
from hybridsolver.report import FIGURES, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NEVER = stability.NEVER


# ---- the functions ------------------------------------------------------------------

STEPS = np.array([0, 10, 20, 30, 40, 50])
KNOWN = np.array([
    [0.0, 0.5, -0.5, 0.9, -1.0, 0.2],  # inside throughout (-1.0 is the closed band's edge): never
    [0.0, 0.1, 0.2, 1.5, 0.0, 0.0],  # out at step 30, back in later: still 30
    [0.0, 0.1, np.nan, 0.0, 0.0, 0.0],  # goes NaN at step 20
    [-3.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # outside from the first record
    [1.0, 0.0, 0.0, 0.0, 0.0, np.inf],  # on the edge at first, infinite at step 50
])


def test_exit_steps_known():
    exits = stability.exit_steps(KNOWN, STEPS, -1.0, 1.0)
    assert exits.dtype == np.int64
    np.testing.assert_array_equal(exits, [NEVER, 30, 20, 0, 50])
    np.testing.assert_array_equal(stability.exit_steps(KNOWN, STEPS, -5.0, 5.0), [NEVER, NEVER, 20, NEVER, 50])


def test_survival_from_exits():
    exits = stability.exit_steps(KNOWN, STEPS, -1.0, 1.0)
    # inside at step t: never exits, or t < exit step
    np.testing.assert_array_equal(stability.survival(exits, STEPS), [4 / 5, 4 / 5, 3 / 5, 2 / 5, 2 / 5, 1 / 5])
    np.testing.assert_array_equal(stability.survival(np.array([NEVER, NEVER]), STEPS), np.ones(6))
    # survival at steps between the records: a member that exits at 30 is still in at 29
    np.testing.assert_array_equal(stability.survival(np.array([30]), np.array([29, 30, 31])), [1.0, 0.0, 0.0])


def test_reference_band_is_mean_plus_minus_n_population_std():
    values = np.array([[1.0, 2.0, np.nan], [4.0, np.inf, 5.0]])
    finite = np.array([1.0, 2.0, 4.0, 5.0])
    std = np.sqrt(np.mean((finite - 3.0) ** 2))  # ddof = 0, as monitor.reference_sigmas
    assert stability.reference_band(values, 2.0) == pytest.approx((3.0 - 2 * std, 3.0 + 2 * std), rel=1e-15)
    with pytest.raises(ValueError, match="2 finite values"):
        stability.reference_band([1.0, np.nan])


def _correlation_loop(x, lags):
    """C(tau) of one member's trajectory x (T, ...), written out with loops."""
    T = x.shape[0]
    mean = sum(x[t] for t in range(T)) / T
    out = []
    for lag in lags:
        if lag >= T:
            out.append(np.nan)
            continue
        terms = []
        for t in range(T - lag):
            a, b = (x[t] - mean).ravel(), (x[t + lag] - mean).ravel()
            terms.append(sum(a[i] * b[i] for i in range(a.size)) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
        out.append(sum(terms) / len(terms))
    return np.array(out)


def _rate_loop(x, times):
    """R(t) of one member's trajectory x (T, ...) at record times (T,), with loops."""
    out = []
    for t in range(x.shape[0] - 1):
        d = (x[t + 1] - x[t]).ravel()
        out.append(sum(abs(d[i]) for i in range(d.size)) / d.size / (times[t + 1] - times[t]))
    return np.array(out)


def _trajectories(M, T, shape, seed=0):
    """Travelling waves plus noise: (M, T, *shape), members with different speeds."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2 * np.pi, shape[-1], endpoint=False)
    t = np.arange(T)[:, None]
    waves = np.stack([np.sin(x[None, :] - (0.3 + 0.2 * m) * t) for m in range(M)])  # (M, T, nx)
    return waves.reshape((M, T) + (1,) * (len(shape) - 1) + (shape[-1],)) + 0.3 * rng.standard_normal((M, T) + shape)


def test_correlation_equals_loops():
    x = _trajectories(3, 9, (2, 4, 6))  # a layered field: every non-member, non-time axis is space
    lags = [0, 1, 2, 4, 8, 9, 12]
    c = stability.spatiotemporal_correlation(x, lags)
    assert c.shape == (3, len(lags))
    for m in range(3):
        np.testing.assert_allclose(c[m], _correlation_loop(x[m], lags), rtol=0, atol=1e-12)
    np.testing.assert_allclose(c[:, 0], 1.0, rtol=0, atol=1e-14)
    assert np.isnan(c[:, 5:]).all()  # lags of T or more
    assert np.ptp(c[:, 1]) > 0.05  # members differ: the rows are not one broadcast value
    with pytest.raises(ValueError, match="negative"):
        stability.spatiotemporal_correlation(x, [-1])


def test_correlation_of_a_steady_member_is_nan():
    x = _trajectories(2, 5, (4,))
    x[1] = x[1, :1]  # member 1 never changes: zero anomalies
    c = stability.spatiotemporal_correlation(x, [0, 1])
    assert np.isfinite(c[0]).all() and np.isnan(c[1]).all()


def test_rate_of_change_equals_loops():
    x = _trajectories(3, 7, (5, 4))
    times = np.array([0.0, 0.1, 0.2, 0.35, 0.5, 0.6, 0.9])
    r = stability.rate_of_change(x, np.diff(times))
    assert r.shape == (3, 6)
    for m in range(3):
        np.testing.assert_allclose(r[m], _rate_loop(x[m], times), rtol=1e-12, atol=1e-12)
    # a scalar dt; the mean (not the sum) over points: the same field on a doubled grid has the same R
    r1 = stability.rate_of_change(x, 0.1)
    np.testing.assert_allclose(r1, np.mean(np.abs(np.diff(x, axis=1)), axis=(2, 3)) / 0.1, rtol=1e-12)
    np.testing.assert_allclose(stability.rate_of_change(np.repeat(np.repeat(x, 2, axis=2), 2, axis=3), 0.1), r1,
                               rtol=1e-12)


# ---- the report on synthetic run directories ------------------------------------------

T_RECORDS, STEP_EVERY, DT = 12, 50, 1e-3  # records at steps 0, 50, ..., 550; t = step * DT
GRID = (6, 8)


def _write(path, members, fields, energy, valid):
    """A run directory's fields.nc or diagnostics.nc (``fields`` (M, T, ny, nx) or None,
    ``energy`` (M, T) or None), laid out as hybridsolver.output writes them."""
    steps = np.arange(T_RECORDS) * STEP_EVERY
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("member", len(members))
        ds.createDimension("time", None)
        ds.createVariable("member", "i8", ("member",))[:] = members
        ds.createVariable("time", "f8", ("time",))[:] = steps * DT
        ds.createVariable("step", "i8", ("time",))[:] = steps
        ds.createVariable("valid", "i1", ("member", "time"))[:] = valid
        if fields is not None:
            for axis, n in zip(("y", "x"), GRID):
                ds.createDimension(axis, n)
                ds.createVariable(axis, "f8", (axis,))[:] = np.arange(n) * 2 * np.pi / n
            ds.createVariable("vorticity", "f8", ("member", "time", "y", "x"))[:] = fields
        if energy is not None:
            ds.createVariable("energy", "f8", ("member", "time"))[:] = energy


def _write_run(folder, members, fields, energy, valid=None):
    os.makedirs(folder, exist_ok=True)
    valid = np.ones(energy.shape, dtype=np.int8) if valid is None else valid
    _write(os.path.join(folder, "fields.nc"), members, fields, None, valid)
    _write(os.path.join(folder, "diagnostics.nc"), members, None, energy, valid)
    return str(folder)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A reference (3 members, energy ~ N(10, 0.5)) and a 4-member run whose energies
    leave the reference's mean ± 5 std band at known steps: member 10 never, 11 at step
    250 (above), 12 at step 350 (quarantined: NaN and valid 0 from then on), 13 at step 0
    (below at its first record only)."""
    folder = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(1)
    ref_energy = rng.normal(10.0, 0.5, (3, T_RECORDS))
    ref_fields = _trajectories(3, T_RECORDS, GRID, seed=2)
    reference = _write_run(folder / "reference", [100, 101, 102], ref_fields, ref_energy)
    mean, std = ref_energy.mean(), ref_energy.std()
    low, high = mean - 5 * std, mean + 5 * std
    energy = np.full((4, T_RECORDS), mean) + 0.1 * rng.standard_normal((4, T_RECORDS))
    energy[1, 5:] = high + 1.0
    energy[3, 0] = low - 1.0
    valid = np.ones((4, T_RECORDS), dtype=np.int8)
    valid[2, 7:] = 0
    energy[2, 7:] = np.nan
    fields = _trajectories(4, T_RECORDS, GRID, seed=3)
    fields[2, 7:] = np.nan
    run = _write_run(folder / "run", [10, 11, 12, 13], fields, energy, valid)
    return {"run": run, "reference": reference, "band": (low, high), "fields": fields, "ref_fields": ref_fields,
            "ref_energy": ref_energy, "steps": np.arange(T_RECORDS) * STEP_EVERY}


def test_report_writes_rollout_scores(synthetic):
    paths = report(synthetic["run"], synthetic["reference"])
    data = xr.open_dataset(os.path.join(synthetic["run"], "scores.nc"), decode_times=False)
    low, high = synthetic["band"]
    attrs = data["exit_step"].attrs
    assert attrs["diagnostic"] == "energy" and attrs["sigmas"] == 5.0 and attrs["units"] == "1"  # a step count
    assert attrs["band_low"] == pytest.approx(low, rel=1e-12) and attrs["band_high"] == pytest.approx(high, rel=1e-12)
    assert data["exit_step"].dims == ("member",) and data["member"].values.tolist() == [10, 11, 12, 13]
    np.testing.assert_array_equal(data["exit_step"], [NEVER, 250, 350, 0])
    np.testing.assert_allclose(data["exit_time"], [np.nan, 0.25, 0.35, 0.0], rtol=1e-12)
    np.testing.assert_array_equal(data["reference_exit_step"], [NEVER] * 3)
    assert data["survival"].dims == ("survival_time",) and data["survival"].attrs["units"] == "1"
    np.testing.assert_array_equal(data["survival_step"], synthetic["steps"])
    np.testing.assert_array_equal(data["survival"], [0.75] * 5 + [0.5] * 2 + [0.25] * 5)
    np.testing.assert_array_equal(data["reference_survival"], np.ones(T_RECORDS))
    # C(tau) and R(t): lags 0 .. T // 2 records; member 12 over its 7 records before quarantine
    assert data["correlation"].dims == ("member", "correlation_lag")
    np.testing.assert_allclose(data["correlation_lag"], np.arange(7) * STEP_EVERY * DT, rtol=1e-12)
    times = synthetic["steps"] * DT
    for m, n in ((0, T_RECORDS), (1, T_RECORDS), (2, 7), (3, T_RECORDS)):
        x = synthetic["fields"][m, :n]
        np.testing.assert_allclose(data["correlation"][m], _correlation_loop(x, range(7)), rtol=0, atol=1e-12)
        rate = np.full(T_RECORDS - 1, np.nan)
        rate[:n - 1] = _rate_loop(x, times[:n])
        np.testing.assert_allclose(data["rate_of_change"][m], rate, rtol=1e-12, atol=0)
    for r in range(3):
        np.testing.assert_allclose(data["reference_correlation"][r], _correlation_loop(synthetic["ref_fields"][r],
                                                                                       range(7)), rtol=0, atol=1e-12)
        np.testing.assert_allclose(data["reference_rate_of_change"][r], _rate_loop(synthetic["ref_fields"][r], times),
                                   rtol=1e-12)
    np.testing.assert_allclose(data["rate_time"], 0.5 * (times[1:] + times[:-1]), rtol=1e-12)
    assert "units" not in data["rate_of_change"].attrs  # the synthetic field states no units (test_cf: CF files)
    for name in ("correlation", "reference_correlation", "rate_of_change", "reference_rate_of_change", "survival",
                 "exit_step", "reference_exit_step"):
        assert data[name].attrs["long_name"], name
    # the figures, linked from index.html, and the stability table
    html = open(paths[-1]).read()
    import matplotlib.image

    for name in ("survival.png", "temporal.png"):
        path = os.path.join(synthetic["run"], "report", name)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_MAGIC, name
        assert np.std(matplotlib.image.imread(path)[..., :3]) > 0.05, f"{name} is blank"
        assert f"<img src='{name}'" in html, name
    assert "1 of 4 (survival 0.25" in html and "step 0 (member 13)" in html and "3 of 3 (survival 1" in html


def test_sigmas_option(synthetic, capsys):
    """--sigmas 1: a narrower band, which the reference's own members leave too."""
    assert main(["report", synthetic["run"], "--reference", synthetic["reference"], "--sigmas", "1"]) == 0
    capsys.readouterr()
    data = xr.open_dataset(os.path.join(synthetic["run"], "scores.nc"), decode_times=False)
    ref = synthetic["ref_energy"]
    low, high = ref.mean() - ref.std(), ref.mean() + ref.std()
    assert data["exit_step"].attrs["sigmas"] == 1.0
    assert data["exit_step"].attrs["band_high"] == pytest.approx(high, rel=1e-12)
    expected = []
    for row in ref:
        out = [i for i, v in enumerate(row) if not low <= v <= high]
        expected.append(synthetic["steps"][out[0]] if out else NEVER)
    assert any(e != NEVER for e in expected)  # the case tests something
    np.testing.assert_array_equal(data["reference_exit_step"], expected)
    for bad in ("0", "-2", "nan", "x"):
        assert main(["report", synthetic["run"], "--reference", synthetic["reference"], "--sigmas", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "--sigmas" in err and "\n" not in err


def test_report_without_reference_leaves_exit_scores_out(synthetic, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(synthetic["run"], run, ignore=shutil.ignore_patterns("report", "scores.nc"))
    paths = report(run)  # no --reference and no case.toml
    data = xr.open_dataset(os.path.join(run, "scores.nc"), decode_times=False)
    for name in ("exit_step", "survival", "reference_exit_step", "reference_correlation"):
        assert name not in data, name
    assert "it needs a reference run directory" in data.attrs["exit_left_out"]
    np.testing.assert_allclose(data["correlation"][0], _correlation_loop(synthetic["fields"][0], range(7)),
                               rtol=0, atol=1e-12)  # C and R need only the run's fields
    html = open(paths[-1]).read()
    assert "<li>survival.png: it needs a reference run directory whose diagnostics.nc holds &#x27;energy&#x27;" in html
    assert not os.path.exists(os.path.join(run, "report", "survival.png"))
    assert os.path.basename(paths[-2]) == "temporal.png"
    assert [name for name, _, _ in FIGURES][-2:] == ["survival.png", "temporal.png"]


def test_truth_file_reference_has_no_band(synthetic):
    """A reference file (no diagnostics.nc beside it): no band, the reason names the file."""
    truth = os.path.join(synthetic["reference"], "fields.nc")
    paths = report(synthetic["run"], truth)
    data = xr.open_dataset(os.path.join(synthetic["run"], "scores.nc"), decode_times=False)
    assert "exit_step" not in data and "reference_correlation" in data
    assert f"{truth} has none" in data.attrs["exit_left_out"]
    html = open(paths[-1]).read()
    assert f"<li>survival.png: the band needs a reference run directory with diagnostics; {truth}" in html
