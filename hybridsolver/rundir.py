"""Guards of a run directory: one writer at a time, room to write, intact files to resume.

- :class:`RunLock`: ``RUN_DIR/lock`` holds the running process's pid, host and start
  time; a second run or ``--resume`` on the directory is refused while that process
  lives, and a stale lock (its process is gone) is taken over with a warning;
- :func:`check_writable` (done by the lock) and :func:`check_space`, before step 0: the
  folder can be created and written, and its disk has room for the run's estimated outputs
  (:func:`estimate_bytes`) unless forced;
- :func:`check_resumable`, before ``--resume``: the checkpoint is a complete, readable
  ``.npz``, ``case.toml`` is readable and equals the case, and the temporary files of
  interrupted writes are removed;
- :func:`checkpoint_step`: the step of the last complete checkpoint, for the message of
  a failed write.

Every refusal is a :class:`hybridsolver.case.CaseError` naming the file (exit code 2).
"""
import json
import os
import shutil
import socket
import sys
import time
import zipfile

import numpy as np

from .case import CaseError, first_difference, validate
from .output import read_run_case

LOCK = "lock"
CHECKPOINT = "checkpoint.npz"
TEMPORARY = ("checkpoint.npz.tmp.npz", "summary.json.tmp", "case.toml.tmp", "fields.nc.tmp", "diagnostics.nc.tmp")


def _alive(holder):
    """True unless ``holder`` (a lock's dict) is a process of this host that no longer runs."""
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Context manager holding ``run_dir/lock`` while a run writes the directory (which it
    creates and checks first, :func:`check_writable`)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK)
        self.held = False

    def __enter__(self):
        check_writable(self.run_dir)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(self.path)
                if holder is not None and _alive(holder):
                    raise CaseError(f"{self.run_dir}: in use by pid {holder['pid']} on {holder['host']} since "
                                    f"{holder.get('started', '?')} ({self.path}); wait for that run, or give "
                                    "another --out (remove the lock only if that run is gone)") from None
                who = f"pid {holder['pid']} on {holder['host']}" if holder else "an unreadable lock"
                print(f"warning: {self.path}: taking over the stale lock of {who} (that process is gone)",
                      file=sys.stderr)
                os.remove(self.path)
                continue
            except OSError as exc:
                raise CaseError(f"{self.run_dir}: cannot write in the run directory ({exc.strerror})") from None
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            self.held = True
            return self

    def __exit__(self, *exc):
        if self.held:
            try:
                os.remove(self.path)
            except OSError:
                pass
            self.held = False
        return False


def _read_lock(path):
    """The holder dict of a lock file, or None when it is unreadable or malformed."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return holder if isinstance(holder, dict) and "pid" in holder and "host" in holder else None
    except (OSError, ValueError):
        return None


def check_writable(run_dir):
    """Create ``run_dir`` if needed and check that a file can be written in it; CaseError
    naming the folder otherwise."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("x")
        os.remove(probe)
    except OSError as exc:
        raise CaseError(f"{run_dir}: cannot create or write the run directory ({exc.strerror})") from None


def _records(start, end, every, first):
    """Writes at a cadence ``every`` in (start, end], plus one at ``start`` when ``first``."""
    return (end // every - start // every if every else 0) + int(first)


def estimate_bytes(sim, run_dir, checkpoint_bytes, resume):
    """{file: bytes} the rest of ``sim``'s run will add to ``run_dir``: fields and
    diagnostics records from the case's cadences (and, on resume, the temporary copies
    the records' truncation makes), and twice ``checkpoint_bytes`` (the checkpoint and
    its temporary file)."""
    out = sim.case.data["output"]
    start, end, M = sim.step, sim.total_steps, len(sim.members)
    field_bytes = sum(v.nbytes for v in sim.output_fields().values()) + M + 16
    fields = _records(start, end, out["fields_every"], not resume) + 1  # + the end's record
    diag_bytes = sum(np.asarray(v).nbytes for v in sim.diagnostics().values()) + M + 16
    diagnostics = _records(start, end, out["diagnostics_every"], not resume and bool(out["diagnostics_every"]))
    sizes = {"fields.nc": fields * field_bytes, "diagnostics.nc": diagnostics * diag_bytes,
             "checkpoint.npz": 2 * checkpoint_bytes}
    if resume:
        for name in ("fields.nc", "diagnostics.nc"):
            path = os.path.join(run_dir, name)
            sizes[name] += os.path.getsize(path) if os.path.isfile(path) else 0
    return sizes


def check_space(run_dir, sizes, force=False):
    """CaseError naming the folder and the sizes when its disk has less free space than
    ``sizes`` ({file: bytes}) add up to, unless ``force``."""
    free = shutil.disk_usage(run_dir).free
    need = sum(sizes.values())
    if free < need and not force:
        parts = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items())
        raise CaseError(f"{run_dir}: {free / 1e6:.2f} MB free, this run writes about {need / 1e6:.2f} MB "
                        f"({parts}); free space or give another --out, or run anyway with --force")


def check_resumable(run_dir, data):
    """CaseError naming the file unless ``run_dir`` holds a complete checkpoint and a
    ``case.toml`` equal to the resolved case ``data`` (once resolved again: a key that a
    later version added takes its default in both); removes the temporary files that
    interrupted writes left."""
    for name in TEMPORARY:
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            os.remove(path)
    checkpoint = os.path.join(run_dir, CHECKPOINT)
    if not os.path.isfile(checkpoint):
        raise CaseError(f"{checkpoint}: no checkpoint to resume from (output.checkpoint_every sets a "
                        "cadence; runs also write one at the end and when interrupted)")
    if checkpoint_step(run_dir) is None:
        raise CaseError(f"{checkpoint}: damaged (not a complete .npz checkpoint); this run directory cannot be "
                        "resumed: start the run again (without --resume) or from another copy")
    stored = os.path.join(run_dir, "case.toml")
    try:
        started = validate(read_run_case(run_dir), stored)
    except CaseError as exc:
        raise CaseError(f"{stored}: the run's case no longer validates ({exc}); start it again") from None
    difference = first_difference(started, data)
    if difference:
        raise CaseError(f"{stored}: the run was started with {difference}; resume it "
                        "with the same case")


def checkpoint_step(run_dir):
    """The step of ``run_dir``'s checkpoint, or None when there is none or it is damaged
    (truncated, corrupt, or without its arrays)."""
    path = os.path.join(run_dir, CHECKPOINT)
    try:
        with open(path, "rb") as f, np.load(f) as ck:  # the file closes even when np.load fails
            for name in ck.files:
                ck[name]  # reads and checks every member's CRC
            return int(ck["step"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
