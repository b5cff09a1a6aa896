"""Warnings ``hybridsolver validate`` gives about settings that cannot work (exit 0).

:func:`case_warnings` looks at a built, not yet run :class:`~hybridsolver.Simulation`:

- the advective CFL number ``dt max(|u|/dx + |v|/dy)`` of the initial condition above
  1 (equations whose diagnostics include ``cfl``; every scheme here treats advection
  explicitly);
- more than :data:`MAX_STEPS` steps;
- outputs (fields.nc and diagnostics.nc, :func:`hybridsolver.rundir.estimate_bytes`)
  larger than :data:`MAX_OUTPUT_BYTES`.

The run itself is unchanged: these are warnings, not errors.
"""
import numpy as np

from .rundir import estimate_bytes

MAX_STEPS = 10**9
MAX_OUTPUT_BYTES = 10 * 2**30  # 10 GiB


def case_warnings(sim, run_dir="."):
    """The warning lines (strings) for ``sim``'s case, each naming the key to change."""
    warnings = []
    cfl = sim.diagnostics().get("cfl")
    if cfl is not None and np.max(cfl) > 1.0:
        warnings.append(f"time.dt: the initial condition's CFL number is {np.max(cfl):.3g} > 1 (dt = {sim.dt:g}); "
                        "the explicit advection is likely unstable")
    if sim.total_steps > MAX_STEPS:
        key = "time.steps" if "steps" in sim.case.data["time"] else "time.t_end"
        warnings.append(f"{key}: {sim.total_steps:.3g} steps (more than {MAX_STEPS:.0e})")
    sizes = estimate_bytes(sim, run_dir, 0, False)
    written = sizes["fields.nc"] + sizes["diagnostics.nc"]
    if written > MAX_OUTPUT_BYTES:
        warnings.append(f"output.fields_every: the run writes about {written / 2**30:.1f} GiB "
                        f"(fields.nc {sizes['fields.nc'] / 2**30:.1f} GiB, diagnostics.nc "
                        f"{sizes['diagnostics.nc'] / 2**30:.1f} GiB; more than {MAX_OUTPUT_BYTES / 2**30:g} GiB)")
    return warnings
