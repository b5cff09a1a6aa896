"""Case files: the schema, TOML loading, defaults and validation (``--set`` overrides:
:mod:`hybridsolver.overrides`).

:func:`load_case` returns a :class:`Case` whose ``data`` holds every key of the
schema below with defaults filled in, so the rest of the package never looks a key
up twice.  Every problem raises :class:`CaseError` with one line that names the
dotted key (or the file) and what was expected.
"""
import math
import os
import tomllib

import tomli_w

from .errors import CaseError
from .grid import DEALIAS_CHOICES
from .overrides import apply_overrides
from .steppers import SCHEMES

REQUIRED = object()


class Field:
    """One scalar or list key: ``kind`` in float|int|str|bool; ``length`` a list's fixed
    length, or ``"any"`` for a non-empty list of any length."""

    def __init__(self, kind, default=REQUIRED, choices=None, minimum=None, positive=False,
                 length=None):
        self.kind, self.default, self.choices = kind, default, choices
        self.minimum, self.positive, self.length = minimum, positive, length

    def _scalar(self, key, value):
        if self.kind == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
            ok = ok and math.isfinite(value)
        elif self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "str":
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, bool)
        if not ok:
            raise CaseError(f"{key}: expected {'a finite number' if self.kind == 'float' else 'a ' + self.kind}"
                            f", got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise CaseError(f"{key}: unknown value {value!r} (expected one of: {', '.join(self.choices)})")
        if self.positive and value <= 0:
            raise CaseError(f"{key}: expected a value > 0, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise CaseError(f"{key}: expected a value >= {self.minimum}, got {value!r}")
        return value

    def check(self, key, value):
        if self.length is None:
            return self._scalar(key, value)
        if self.length == "any":
            if not isinstance(value, list) or not value:
                raise CaseError(f"{key}: expected a non-empty list of {self.kind} values, got {value!r}")
        elif not isinstance(value, list) or len(value) != self.length:
            raise CaseError(f"{key}: expected a list of {self.length} {self.kind} values, got {value!r}")
        return [self._scalar(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _table(spec, data, prefix):
    """Validate ``data`` against ``spec`` (key -> Field), filling defaults."""
    if not isinstance(data, dict):
        raise CaseError(f"{prefix}: expected a table, got {data!r}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise CaseError(f"{prefix}.{unknown[0]}: unknown key (expected one of: {', '.join(spec)})")
    out = {}
    for name, field in spec.items():
        key = f"{prefix}.{name}"
        if name in data:
            out[name] = field.check(key, data[name])
        elif field.default is REQUIRED:
            raise CaseError(f"{key}: missing (required)")
        elif field.default is not None:
            out[name] = field.default
    return out


def _typed_table(kinds, data, prefix, default_type=None):
    """A table whose allowed keys depend on its ``type`` key."""
    if not isinstance(data, dict):
        raise CaseError(f"{prefix}: expected a table, got {data!r}")
    kind = data.get("type", default_type)
    if kind is None:
        raise CaseError(f"{prefix}.type: missing (required)")
    Field("str", choices=tuple(kinds)).check(f"{prefix}.type", kind)
    spec = {"type": Field("str")} | kinds[kind]
    return _table(spec, {"type": kind} | data, prefix)


FORCINGS = {
    "none": {},
    "kolmogorov": {"wavenumber": Field("int", 4, positive=True), "amplitude": Field("float", 1.0)},
    "diagonal": {"wavenumber": Field("int", 1, positive=True), "amplitude": Field("float", 0.1)},
    "cosine": {"wavenumber": Field("int", 4, positive=True), "amplitude": Field("float", 1.0)},
}
# navier_stokes2d's penalized body and open-flow boundaries (hybridsolver.equations.obstacle)
OBSTACLES = {
    "none": {},
    "cylinder": {"center": Field("float", length=2), "diameter": Field("float", positive=True),
                 "eta": Field("float", 1e-3, positive=True), "smoothing": Field("float", 1.0, positive=True)},
}
INFLOWS = {
    "none": {},
    "uniform": {"velocity": Field("float", 1.0), "sponge_width": Field("float", positive=True),
                "sponge_rate": Field("float", 10.0, positive=True),
                "walls": Field("str", "none", choices=("none", "free_slip", "no_slip")),
                "wall_cells": Field("int", 2, positive=True), "wall_eta": Field("float", 1e-3, positive=True)},
}
STOCHASTIC_FORCING = {"amplitude": Field("float", 0.0, minimum=0.0), "alpha": Field("float", 0.0, minimum=0.0)}
INITIAL_CONDITIONS = {
    "gaussian_random_field": {"alpha": Field("float", 2.5, positive=True), "tau": Field("float", 7.0, positive=True),
                              "sigma": Field("float", None, positive=True)},
    "random_velocity": {"peak_wavenumber": Field("float", 4.0, positive=True),
                        "max_velocity": Field("float", 7.0, positive=True)},
    "taylor_green": {"wavenumber": Field("int", 1, positive=True), "amplitude": Field("float", 2.0)},
    "random_packet": {"amplitude": Field("float", length=2), "width": Field("float", length=2),
                      "wavenumber": Field("float", 0.0)},  # "center" depends on the grid's dimension
    "pyqg_random": {"amplitude": Field("float", 1e-7, minimum=0.0), "zonal_amplitude": Field("float", 1e-6,
                                                                                              minimum=0.0)},
    "file": {"path": Field("str"), "variable": Field("str", None)},
}
EQUATION_KEYS = {
    "navier_stokes2d": {
        "viscosity": Field("float", 0.0, minimum=0.0),
        "drag": Field("float", 0.0, minimum=0.0),
        "filterfac": Field("float", 23.6, positive=True),
        "advection": Field("bool", True),
        "beta": Field("float", 0.0),
    },
    # pyqg's QGModel keywords and defaults (SI units); grid.length is (W, L)
    "qg2layer": {
        "beta": Field("float", 1.5e-11), "rd": Field("float", 15000.0, positive=True),
        "delta": Field("float", 0.25, positive=True), "H1": Field("float", 500.0, positive=True),
        "U1": Field("float", 0.025), "U2": Field("float", 0.0), "rek": Field("float", 5.787e-7, minimum=0.0),
        "filterfac": Field("float", 23.6, positive=True),
    },
    "kdv": {"viscosity": Field("float", 0.02, minimum=0.0),
            "discretization": Field("str", "spectral", choices=("spectral", "finite_difference"))},
    "burgers2d": {"viscosity": Field("float", 0.005, minimum=0.0),
                  "boundary": Field("str", "dirichlet", choices=("dirichlet", "periodic"))},
    "observed": {"fields": Field("str", length="any")},
}
EQUATION_TABLES = {"navier_stokes2d": {"forcing": FORCINGS, "stochastic_forcing": None, "obstacle": OBSTACLES,
                                       "inflow": INFLOWS},
                   "qg2layer": {}, "kdv": {}, "burgers2d": {}, "observed": {}}
# initial-condition types each equation accepts
EQUATION_INITIAL = {"navier_stokes2d": ("gaussian_random_field", "random_velocity", "taylor_green", "file"),
                    "qg2layer": ("pyqg_random", "file"), "kdv": ("random_packet", "file"),
                    "burgers2d": ("random_packet", "file"), "observed": ("file",)}
# defaults that differ by equation: {(section, key): value}
EQUATION_DEFAULTS = {
    "qg2layer": {("grid", "dealias"): "exponential", ("time", "scheme"): "ab3"},
    "kdv": {("grid", "length"): [10.0], ("time", "scheme"): "etdrk4"},
    "burgers2d": {("grid", "length"): [1.0, 1.0], ("grid", "dealias"): "none", ("time", "scheme"): "heun"},
    "observed": {("grid", "dealias"): "none", ("time", "scheme"): "heun"},
}
# time schemes and dealiasing each equation (or discretization) supports
EQUATION_SCHEMES = {"navier_stokes2d": ("cn", "cn_rk4", "ab3", "etdrk4"), "qg2layer": ("cn", "cn_rk4", "ab3", "etdrk4"),
                    ("kdv", "spectral"): ("etdrk4",), ("kdv", "finite_difference"): ("rk4", "heun"),
                    "burgers2d": ("heun", "rk4"), "observed": ("heun", "rk4")}
EQUATION_DEALIAS = {"kdv": ("2/3", "none"), "burgers2d": ("none",), "observed": ("none",)}
GRID_DIMENSIONS = {"kdv": 1}  # others: 2
TWO_PI = 2 * math.pi
SECTIONS = {
    "grid": {"shape": Field("int", length=2, minimum=4), "length": Field("float", [TWO_PI, TWO_PI], length=2,
                                                                           positive=True),
             "dealias": Field("str", "2/3", choices=DEALIAS_CHOICES),
             # coordinates of the first grid point, in the order of shape (default: 0)
             "origin": Field("float", None, length=2)},
    # start: the model time of step 0 (times in the case, t_end and plugin windows, are model times)
    "time": {"scheme": Field("str", "cn_rk4", choices=SCHEMES), "dt": Field("float", positive=True),
             "start": Field("float", 0.0), "t_end": Field("float", None), "steps": Field("int", None, positive=True)},
    "ensemble": {"members": Field("int", 1, positive=True), "seed": Field("int", 0, minimum=0),
                 "first_member": Field("int", 0, minimum=0)},
    "output": {"dir": Field("str", None), "fields_every": Field("int", 0, minimum=0),
               "diagnostics_every": Field("int", 10, minimum=0), "checkpoint_every": Field("int", 0, minimum=0),
               # the variables of fields.nc and generate's files: state or derived fields (default: the state's)
               "fields": Field("str", None, length="any")},
    # per-member monitors (hybridsolver.simulation): non-finite states always; `quantity` (a
    # diagnostics scalar) outside `bounds` or the reference's mean +- reference_sigmas std
    "monitor": {"on_failure": Field("str", "quarantine", choices=("quarantine", "abort")),
                "every": Field("int", 10, positive=True), "quantity": Field("str", "energy"),
                "bounds": Field("float", None, length=2), "reference_sigmas": Field("float", None, positive=True)},
    # hybridsolver generate: trajectories per split and observation noise (hybridsolver.datasets)
    # (split "members": train/validation/test trajectories; "time": the snapshots of
    # `trajectories` up to split_times[0], then to split_times[1], then the rest; a window
    # of points [y, x] to sample instead of the grid's)
    "dataset": {"train": Field("int", 10, minimum=0), "validation": Field("int", 5, minimum=0),
                "test": Field("int", 5, minimum=0), "observation_noise": Field("float", 0.0, minimum=0.0),
                "split": Field("str", None, choices=("members", "time")), "split_times": Field("float", None, length=2),
                "trajectories": Field("int", None, positive=True), "window_shape": Field("int", None, length=2,
                                                                                         positive=True),
                "window_start": Field("float", None, length=2), "window_spacing": Field("float", None, length=2,
                                                                                         positive=True)},
    # hybridsolver run on a Dask cluster (hybridsolver.distributed): address "local" starts a
    # LocalCluster of `workers` processes, else a scheduler address; none runs in process
    "distributed": {"address": Field("str", None), "workers": Field("int", 2, positive=True),
                    "threads_per_worker": Field("int", 1, positive=True),
                    "chunk_members": Field("int", None, positive=True)},
    # hybridsolver report: the truth the ensemble is scored against (hybridsolver.report); only
    # in a case that gives it
    "reference": {"dir": Field("str", None), "path": Field("str", None), "member": Field("int", 0, minimum=0)},
    # how the step loop runs its plugins (hybridsolver.plugin.resident): resident = true keeps an
    # emulator's rollout (with its refiners) on the plugin's device between outputs
    "runtime": {"resident": Field("bool", True)},
}
OPTIONAL_SECTIONS = ("reference",)


PLUGIN_KEYS = {
    "path": Field("str"), "name": Field("str", None), "every": Field("int", None, positive=True),
    "interval": Field("float", None, positive=True), "offset": Field("float", 0.0, minimum=0.0),
    "device": Field("str", "auto", choices=("auto", "cpu", "cuda")), "max_batch": Field("int", None, positive=True),
    "workers": Field("int", 1, positive=True),
    "members": Field("str", None), "hold_noise": Field("float", 0.0, minimum=0.0),
    "start": Field("float", 0.0, minimum=0.0), "stop": Field("float", None, positive=True),
}


def _plugins(entries):
    """Validate the ``[[plugins]]`` list (artifacts are checked when a Simulation loads them)."""
    if not isinstance(entries, list):
        raise CaseError(f"plugins: expected a list of tables ([[plugins]]), got {entries!r}")
    out = []
    for i, entry in enumerate(entries):
        prefix = f"plugins.{i}"
        if not isinstance(entry, dict):
            raise CaseError(f"{prefix}: expected a table, got {entry!r}")
        sampler = entry.get("sampler", {})
        table = _table(PLUGIN_KEYS, {k: v for k, v in entry.items() if k != "sampler"}, prefix)
        if "every" in table and "interval" in table:
            raise CaseError(f"{prefix}.interval: give at most one of {prefix}.every and {prefix}.interval")
        if "interval" not in table and table["offset"] != int(table["offset"]):
            raise CaseError(f"{prefix}.offset: with a step schedule the offset counts steps (an integer), "
                            f"got {table['offset']!r}")
        if "stop" in table and table["stop"] <= table["start"]:
            raise CaseError(f"{prefix}.stop: the window needs start < stop, got start = {table['start']}, "
                            f"stop = {table['stop']}")
        if not isinstance(sampler, dict):
            raise CaseError(f"{prefix}.sampler: expected a table, got {sampler!r}")
        table["sampler"] = {k: Field("float").check(f"{prefix}.sampler.{k}", v) for k, v in sampler.items()}
        out.append(table)
    return out


class Case:
    """A validated case: ``data`` (nested dict, defaults filled) and its source path."""

    def __init__(self, data, path=None):
        self.data = data
        self.path = path

    @property
    def name(self):
        return os.path.splitext(os.path.basename(self.path))[0] if self.path else "case"

    def run_dir(self, out_dir=None):
        """The run directory: ``out_dir``, else ``output.dir``, else ``runs/<case name>``."""
        return out_dir or self.data["output"].get("dir") or os.path.join("runs", self.name)

    @property
    def steps(self):
        """Number of steps: ``time.steps`` or ``ceil((t_end - start) / dt)``."""
        t = self.data["time"]
        if "steps" in t:
            return t["steps"]
        return max(1, math.ceil((t["t_end"] - t["start"]) / t["dt"] - 1e-9))

    def to_toml(self):
        return tomli_w.dumps(self.data)

    def __getitem__(self, section):
        return self.data[section]


def validate(raw, source="case"):
    """Check a raw case dict and return the resolved one (defaults filled)."""
    if not isinstance(raw, dict):
        raise CaseError(f"{source}: expected a TOML document")
    known = ("equation", "initial_condition", "plugins") + tuple(SECTIONS)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise CaseError(f"{unknown[0]}: unknown section (expected one of: {', '.join(known)})")
    for section in ("equation", "grid", "initial_condition", "time"):
        if section not in raw:
            raise CaseError(f"{section}: missing section (required)")
    data = {}
    eq = raw["equation"]
    if not isinstance(eq, dict):
        raise CaseError(f"equation: expected a table, got {eq!r}")
    name = Field("str", choices=tuple(EQUATION_KEYS)).check("equation.name", eq.get("name", "<missing>"))
    tables = EQUATION_TABLES[name]
    scalar_spec = {"name": Field("str")} | EQUATION_KEYS[name]
    unknown = sorted(set(eq) - set(scalar_spec) - set(tables))
    if unknown:
        raise CaseError(f"equation.{unknown[0]}: unknown key (expected one of: "
                        f"{', '.join(list(scalar_spec) + list(tables))})")
    data["equation"] = _table(scalar_spec, {k: v for k, v in eq.items() if k in scalar_spec}, "equation")
    for table, kinds in tables.items():
        if table == "stochastic_forcing":
            data["equation"][table] = _table(STOCHASTIC_FORCING, eq.get(table, {}), "equation.stochastic_forcing")
        else:
            data["equation"][table] = _typed_table(kinds, eq.get(table, {"type": "none"}), f"equation.{table}")
    dims = GRID_DIMENSIONS.get(name, 2)
    for section, spec in SECTIONS.items():
        if section in OPTIONAL_SECTIONS and section not in raw:
            continue
        given = raw.get(section, {})
        if isinstance(given, dict):
            defaults = {k: v for (sec, k), v in EQUATION_DEFAULTS.get(name, {}).items() if sec == section}
            given = defaults | given
        if section == "grid":
            spec = spec | {"shape": Field("int", length=dims, minimum=4),
                           "length": Field("float", spec["length"].default, length=dims, positive=True),
                           "origin": Field("float", None, length=dims)}
        data[section] = _table(spec, given, section)
    _check_choices(data, name)
    kinds = {k: v for k, v in INITIAL_CONDITIONS.items() if k in EQUATION_INITIAL[name]}
    if "random_packet" in kinds:
        kinds["random_packet"] = kinds["random_packet"] | {"center": Field("float", length=dims)}
    data["initial_condition"] = _typed_table(kinds, raw["initial_condition"], "initial_condition")
    if name == "observed":
        _check_observed(data["equation"]["fields"], data["initial_condition"])
    data["plugins"] = _plugins(raw.get("plugins", []))
    t = data["time"]
    if ("t_end" in t) == ("steps" in t):
        raise CaseError("time.t_end: give exactly one of time.t_end and time.steps")
    if "t_end" in t and not t["t_end"] > t["start"]:
        raise CaseError(f"time.t_end: expected a time after time.start = {t['start']:g}, got {t['t_end']:g}")
    if "reference" in data and ("dir" in data["reference"]) == ("path" in data["reference"]):
        raise CaseError("reference.dir: give exactly one of reference.dir (a run directory) and reference.path "
                        "(a truth netCDF file)")
    return data


RESERVED_NAMES = ("member", "time", "step", "valid", "x", "y", "layer")  # dims and variables of the run files


def _check_observed(names, start):
    """``equation.fields`` of ``observed``: distinct identifiers that are not a run file's
    own names; with several, the start file names none of them (each is read from the
    netCDF variable of its name)."""
    for i, name in enumerate(names):
        if not name.isidentifier() or name in RESERVED_NAMES:
            raise CaseError(f"equation.fields[{i}]: {name!r} is not a usable field name (a Python identifier "
                            f"other than {', '.join(RESERVED_NAMES)})")
        if name in names[:i]:
            raise CaseError(f"equation.fields[{i}]: {name!r} is listed twice")
    key = "path" if start["path"].endswith(".npy") else "variable" if start.get("variable") else None
    if len(names) > 1 and key:
        raise CaseError(f"initial_condition.{key}: names one field; observed has fields {', '.join(names)}, "
                        "each read from the netCDF variable of its name")


def _check_choices(data, name):
    """Time schemes and dealiasing the equation (and its discretization) supports."""
    eq = data["equation"]
    key = (name, eq["discretization"]) if name == "kdv" else name
    schemes = EQUATION_SCHEMES[key]
    what = f"{name}" + (f" ({eq['discretization']})" if name == "kdv" else "")
    if data["time"]["scheme"] not in schemes:
        raise CaseError(f"time.scheme: {what} is stepped with {', '.join(schemes)}, got "
                        f"'{data['time']['scheme']}'")
    if name == "navier_stokes2d" and eq["beta"] and data["time"]["scheme"] != "etdrk4":
        raise CaseError(f"time.scheme: equation.beta makes the linear operator complex (Rossby waves), which "
                        f"only etdrk4 integrates; got '{data['time']['scheme']}'")
    dealias = EQUATION_DEALIAS.get(name, DEALIAS_CHOICES)
    if data["grid"]["dealias"] not in dealias:
        raise CaseError(f"grid.dealias: {name} supports {', '.join(dealias)}, got '{data['grid']['dealias']}'")


def resolve_path(path, folder):
    """A relative file ``path`` of a case: as it stands if it exists from the working
    directory, else from ``folder`` (the case file's folder) if it exists there."""
    if os.path.isabs(path) or os.path.exists(path) or not folder:
        return path
    candidate = os.path.normpath(os.path.join(folder, path))
    return candidate if os.path.exists(candidate) else path


def first_difference(a, b, prefix=""):
    """The first dotted key whose value differs between nested dicts ``a`` and ``b``, as
    ``"key = A (now B)"``; None when they are equal."""
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = first_difference(x, y, f"{name}.")
            if found:
                return found
        elif x != y:
            return f"{name} = {x!r} (now {y!r})"
    return None


def read_toml(path):
    """Parse a TOML file; errors name the file."""
    if not os.path.isfile(path):
        raise CaseError(f"{path}: case file does not exist")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise CaseError(f"{path}: not valid TOML (not UTF-8 text)") from None


def load_case(source, overrides=None):
    """A :class:`Case` from a TOML path or a raw dict, with dotted-key overrides applied."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        raw = read_toml(path)
    else:
        path, raw = None, _deep_copy(source)
    apply_overrides(raw, overrides or {})
    try:
        return Case(validate(raw, path or "case"), path)
    except CaseError as exc:
        raise CaseError(f"{path}: {exc}" if path else str(exc)) from None


def _deep_copy(obj):
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj
