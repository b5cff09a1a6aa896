"""The run directory under I/O faults: a disk that fills mid-run, unwritable and too small
folders, damaged files on --resume, two runs on one directory, and kills inside every
kind of write.  Each faulty run ends resumable to the bits of an uninterrupted one, or
refused with exit code 2 and one line naming the file."""
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import netCDF4
import numpy as np
import pytest
import tomli_w
from run_files import assert_same_run_files, read_netcdf

from hybridsolver import Simulation, output
from hybridsolver.cli import WRITE_FAILED, main
from hybridsolver.hooks import Hook


def _case(case, tmp_path, **output_keys):
    """32^2, 2 members, 60 steps, stochastic forcing; ``output_keys`` set the cadences."""
    case["time"]["steps"] = 60
    case["ensemble"]["members"] = 2
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5, "alpha": 0.01}
    case["output"] = {"fields_every": 10, "diagnostics_every": 5, "checkpoint_every": 20} | output_keys
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(case))
    return str(path)


@pytest.fixture
def whole(tmp_path):
    """Runs ``case_path`` uninterrupted into tmp_path/whole and returns that folder."""
    def run(case_path):
        out = str(tmp_path / "whole")
        Simulation.from_case(case_path).run(out_dir=out, progress=False)
        return out
    return run


# ---- 1. a disk that fills mid-run ----------------------------------------------------------

@contextlib.contextmanager
def _tmpfs(path, size):
    """A tmpfs of ``size`` at ``path`` (root only), or None where it cannot be mounted."""
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


class FillDisk(Hook):
    """At step ``at``, fills the run directory's disk: on a tmpfs with a filler file, else by
    making every later write of the run directory raise ENOSPC (``output.writing``)."""

    callsite = "observe"

    def __init__(self, at, folder, real):
        super().__init__(every=at)
        self.at, self.folder, self.real = at, folder, real
        self.monkeypatch = pytest.MonkeyPatch()

    def __call__(self, sim, state):
        if sim.step != self.at:
            return
        if self.real:
            with open(os.path.join(self.folder, "filler"), "wb") as f:
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            return
        real_writing = output.writing

        @contextlib.contextmanager
        def full(path, tmp=None):
            with real_writing(path, tmp):
                if tmp:
                    open(tmp, "w").close()  # the write began
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                yield
        self.monkeypatch.setattr(output, "writing", full)

    def free(self):
        if self.real:
            os.remove(os.path.join(self.folder, "filler"))
        else:
            self.monkeypatch.undo()


# kind -> (cadences, the step the disk fills at, the file whose write fails)
FILL_CASES = {  # (the last complete checkpoint is then at step 20, 20 and 10)
    "fields": ({"fields_every": 10, "diagnostics_every": 0, "checkpoint_every": 20}, 32, "fields.nc"),
    # diagnostics every step, flushed at the checkpoints: the flush at 40 needs a new chunk of spectra
    "diagnostics": ({"fields_every": 0, "diagnostics_every": 1, "checkpoint_every": 20}, 32, "diagnostics.nc"),
    "checkpoint": ({"fields_every": 0, "diagnostics_every": 0, "checkpoint_every": 10}, 12, "checkpoint.npz"),
}


@pytest.mark.parametrize("kind", sorted(FILL_CASES))
def test_a_disk_that_fills_mid_run_stops_with_one_line_and_resumes_bit_identically(tmp_path, case, capsys, whole,
                                                                                    monkeypatch, kind):
    cadences, at, failing = FILL_CASES[kind]
    case_path = _case(case, tmp_path, **cadences)
    reference = whole(case_path)
    disk = tmp_path / "disk"
    with _tmpfs(disk, "4m") as real:
        out = str(disk / "run")
        filler = FillDisk(at, str(disk), real)
        init = Simulation.__init__

        def with_filler(self, case):
            init(self, case)
            self.add_hook(filler)
        monkeypatch.setattr(Simulation, "__init__", with_filler)
        code = main(["run", case_path, "--out", out, "--quiet"])
        monkeypatch.undo()
        err = capsys.readouterr().err.strip().splitlines()
        assert code == WRITE_FAILED and len(err) == 1, err
        assert err[0].startswith(f"error: {out}/{failing}: "), err
        step = 20 if kind != "checkpoint" else 10
        assert f"the last complete checkpoint is step {step}: free space, then resume with hybridsolver run " \
               f"{case_path} --out {out} --quiet --resume" in err[0]
        assert not [f for f in os.listdir(out) if f.endswith((".tmp", ".tmp.npz"))]
        filler.free()
        assert main(["run", case_path, "--out", out, "--quiet", "--resume"]) == 0
        assert_same_run_files(out, reference)


def test_a_summary_that_cannot_be_written_leaves_a_resumable_directory(tmp_path, case, capsys, whole, monkeypatch):
    case_path = _case(case, tmp_path)
    reference = whole(case_path)
    out = str(tmp_path / "run")

    def no_space(run_dir, summary):
        raise output.WriteError(os.path.join(run_dir, "summary.json"), OSError(errno.ENOSPC, "No space left on device"))
    monkeypatch.setattr(output.RunWriter, "write_summary", lambda self, summary: no_space(self.dir, summary))
    assert main(["run", case_path, "--out", out, "--quiet"]) == WRITE_FAILED
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}/summary.json: No space left on device") and "step 60" in err
    monkeypatch.undo()
    assert main(["run", case_path, "--out", out, "--quiet", "--resume"]) == 0
    assert_same_run_files(out, reference)
    assert json.loads(open(os.path.join(out, "summary.json")).read())["status"] == "ok"


# ---- 2. unwritable and too small folders ---------------------------------------------------

def test_an_unwritable_run_directory_is_refused_before_step_0(tmp_path, case, capsys):
    case_path = _case(case, tmp_path)
    folder = tmp_path / "readonly"
    os.makedirs(folder)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        os.chmod(folder, 0o500)
    try:
        out = str(folder / "run")
        assert main(["run", case_path, "--out", out, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {out}: cannot create or write the run directory (")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        else:
            os.chmod(folder, 0o700)


def test_a_disk_too_small_for_the_outputs_is_refused_unless_forced(tmp_path, case, capsys):
    case_path = _case(case, tmp_path, fields_every=1)
    small = 2 << 20
    with _tmpfs(tmp_path / "small", "2m") as real:
        if not real:
            pytest.skip("mounting a small tmpfs needs root")
        out = str(tmp_path / "small" / "run")
        assert main(["run", case_path, "--out", out, "--quiet", "--set", "time.steps=2000"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {out}: ") and "MB free, this run writes about" in err[0]
        assert "fields.nc" in err[0] and err[0].endswith("or run anyway with --force")
        assert not os.path.exists(os.path.join(out, "fields.nc"))
        free = os.statvfs(out).f_bavail * os.statvfs(out).f_frsize
        assert free <= small
        assert main(["run", case_path, "--out", out, "--quiet", "--set", "time.steps=20", "--force"]) == 0


# ---- 3. damaged files on --resume ---------------------------------------------------------

def _truncate(path, keep=0.5):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:int(len(data) * keep)])


def _edit(path, old, new):
    text = open(path).read()
    assert old in text
    open(path, "w").write(text.replace(old, new))


def _incomplete_last_record(path):
    """Append a record whose data is written but whose step is not (a kill mid-append)."""
    with netCDF4.Dataset(path, "a") as ds:
        n = len(ds.dimensions["time"])
        for var in ds.variables.values():
            if var.dimensions[:2] == ("member", "time"):
                var[:, n] = np.ones(var.shape[:1] + var.shape[2:])


def _drop_records(path, count):
    output.rewrite_records([path], path, last_step=int(read_netcdf(path)["step"][-1 - count]))


DAMAGES = {  # name: (what is done to the run directory, expected: "repaired" or the file named)
    "truncated checkpoint": (lambda d: _truncate(os.path.join(d, "checkpoint.npz")), "checkpoint.npz: damaged"),
    "garbage checkpoint": (lambda d: open(os.path.join(d, "checkpoint.npz"), "wb").write(b"PK\x03\x04" + b"x" * 100),
                           "checkpoint.npz: damaged"),
    "no checkpoint": (lambda d: os.remove(os.path.join(d, "checkpoint.npz")), "checkpoint.npz: no checkpoint"),
    "edited case.toml": (lambda d: open(os.path.join(d, "case.toml"), "a").write("\n[ensemble]\nseed = 3\n"),
                         "case.toml: damaged"),
    "changed case.toml": (lambda d: _edit(os.path.join(d, "case.toml"), "viscosity = 0.001", "viscosity = 0.002"),
                          "case.toml: the run was started with equation.viscosity = 0.002"),
    "truncated fields.nc": (lambda d: _truncate(os.path.join(d, "fields.nc"), 0.3), "fields.nc: missing or damaged"),
    "no diagnostics.nc": (lambda d: os.remove(os.path.join(d, "diagnostics.nc")),
                          "diagnostics.nc: missing or damaged"),
    "diagnostics.nc short of records": (lambda d: _drop_records(os.path.join(d, "diagnostics.nc"), 4),
                                        "diagnostics.nc: its complete records end at step 10"),
    "incomplete last record": (lambda d: _incomplete_last_record(os.path.join(d, "fields.nc")), "repaired"),
    "leftover temporary files": (lambda d: [open(os.path.join(d, n), "w").write("x") for n in
                                            ("checkpoint.npz.tmp.npz", "summary.json.tmp", "fields.nc.tmp")],
                                 "repaired"),
    "damaged summary.json": (lambda d: open(os.path.join(d, "summary.json"), "w").write("{"), "repaired"),
}


class StopAt(Hook):
    """Raises KeyboardInterrupt at step ``at`` (a run that died there, its checkpoint earlier)."""

    callsite = "observe"

    def __init__(self, at):
        super().__init__(every=at)
        self.at = at

    def __call__(self, sim, state):
        if sim.step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_files_on_resume_are_repaired_or_refused_naming_the_file(tmp_path, case, capsys, whole, damage):
    case_path = _case(case, tmp_path)
    reference = whole(case_path)
    out = str(tmp_path / "run")
    sim = Simulation.from_case(case_path)
    sim.add_hook(StopAt(35))  # the checkpoint is at step 20; records up to 35
    with pytest.raises(KeyboardInterrupt):
        sim.run(out_dir=out, progress=False)
    do, expected = DAMAGES[damage]
    do(out)
    capsys.readouterr()
    code = main(["run", case_path, "--out", out, "--quiet", "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    if expected == "repaired":
        assert code == 0, err
        assert_same_run_files(out, reference)
        assert not [f for f in os.listdir(out) if f.endswith((".tmp", ".tmp.npz"))]
    else:
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: {out}/") and expected in err[0], err


# ---- 4. one writer per run directory -------------------------------------------------------

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from hybridsolver import Simulation
from hybridsolver.hooks import Hook

class Wait(Hook):
    callsite = "observe"
    def __call__(self, sim, state):
        if sim.step == 5:
            open(sys.argv[4], "w").close()
            time.sleep(60)

sim = Simulation.from_case(sys.argv[2])
sim.add_hook(Wait(every=5))
sim.run(out_dir=sys.argv[3], progress=False)
"""


def test_a_second_run_on_a_directory_in_use_exits_2_naming_the_holder(tmp_path, case, capsys):
    case_path = _case(case, tmp_path)
    out = str(tmp_path / "run")
    ready = str(tmp_path / "ready")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, os.path.dirname(__file__), case_path, out, ready])
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(ready) and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.1)
        assert os.path.exists(ready)
        for extra in ([], ["--resume"]):
            assert main(["run", case_path, "--out", out, "--quiet"] + extra) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith(
                f"error: {out}: in use by pid {holder.pid} on {socket.gethostname()} since ")
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", case_path, "--out", out, "--quiet"]) == 0  # its lock is stale now
    assert f"taking over the stale lock of pid {holder.pid}" in capsys.readouterr().err


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, case, capsys, whole):
    case_path = _case(case, tmp_path)
    reference = whole(case_path)
    out = str(tmp_path / "run")
    os.makedirs(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with open(os.path.join(out, "lock"), "w") as f:
        json.dump({"pid": int(dead.stdout), "host": socket.gethostname(), "started": "2026-12-01T00:00:00"}, f)
    assert main(["run", case_path, "--out", out, "--quiet"]) == 0
    err = capsys.readouterr().err.strip()
    assert err == f"warning: {out}/lock: taking over the stale lock of pid {int(dead.stdout)} on " \
                  f"{socket.gethostname()} (that process is gone)"
    assert not os.path.exists(os.path.join(out, "lock"))
    assert_same_run_files(out, reference)


# ---- 5. kills inside every kind of write ---------------------------------------------------

KILL_INSIDE = """
import os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from hybridsolver import Simulation, output

kind, nth, case, out = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
calls = [0]

def due():
    calls[0] += 1
    return calls[0] == nth

if kind in ("fields", "diagnostics"):
    append = output.RunWriter._append

    def killing_append(self, path, records):
        if path.endswith(kind + ".nc") and due():
            import netCDF4
            with netCDF4.Dataset(path, "a") as ds:  # the data of the records, not their steps
                start = len(ds.dimensions["time"])
                for name in records[0][2]:
                    ds.variables[name][:, start:start + len(records)] = np.stack([r[2][name] for r in records], 1)
                ds.sync()
                os.kill(os.getpid(), signal.SIGKILL)
        return append(self, path, records)
    output.RunWriter._append = killing_append
elif kind == "checkpoint":
    savez = np.savez

    def killing_savez(file, **arrays):
        if due():
            with open(file, "wb") as f:
                f.write(b"PK\\x03\\x04 half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
        return savez(file, **arrays)
    np.savez = killing_savez
else:
    write_atomic = output.write_atomic

    def killing_write(path, text):
        if path.endswith("summary.json") and due():
            with open(path + ".tmp", "w") as f:
                f.write(text[:len(text) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return write_atomic(path, text)
    output.write_atomic = killing_write
Simulation.from_case(case).run(out_dir=out, progress=False)
"""


@pytest.mark.parametrize("kind, nth", [("fields", n) for n in range(1, 8)] + [("diagnostics", n) for n in range(1, 7)]
                         + [("checkpoint", n) for n in range(1, 7)] + [("summary", 1)])
def test_a_kill_inside_a_write_leaves_a_directory_that_resumes_bit_identically(tmp_path, case, whole, kind, nth):
    """Fields every 10 steps (7 appends), diagnostics every 5 (6 flushes, with the fields),
    checkpoints every 10 (6), the summary at the end: the nth write of the kind is killed
    half-way (20 kills)."""
    case_path = _case(case, tmp_path, checkpoint_every=10)
    reference = whole(case_path)
    out = str(tmp_path / "run")
    done = subprocess.run([sys.executable, "-c", KILL_INSIDE, os.path.dirname(__file__), kind, str(nth), case_path,
                           out], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    code = main(["run", case_path, "--out", out, "--quiet", "--resume"])
    if code == 2:  # killed before the first checkpoint: nothing to resume, the run starts again
        assert not os.path.exists(os.path.join(out, "checkpoint.npz"))
        code = main(["run", case_path, "--out", out, "--quiet"])
    assert code == 0
    assert_same_run_files(out, reference)
