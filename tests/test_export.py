"""Bringing your own trained model: build_manifest from a case, export(..., example=) by tracing."""
import os

import numpy as np
import pytest
import torch

from hybridsolver import Simulation
from hybridsolver.plugin import PluginError, build_manifest, export, load_module, read_artifact

CASES = os.path.join(os.path.dirname(__file__), os.pardir, "cases")
KOLMOGOROV = os.path.join(CASES, "kolmogorov64.toml")
EDDY = os.path.join(CASES, "qg_eddy.toml")


class PublishedClosure(torch.nn.Module):
    """An authors' closure: forward(x) alone, and a lambda that TorchScript cannot compile."""

    def __init__(self, channels=1):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular", dtype=torch.float64)

    def forward(self, x):
        activation = lambda t: torch.tanh(t)  # noqa: E731  (the unscriptable part)
        return 1e-3 * activation(self.conv(x))


class NoisyClosure(PublishedClosure):
    def forward(self, x, noise):
        return super().forward(x) + 1e-4 * noise[0]


class Branching(PublishedClosure):
    def forward(self, x):
        if float(x.mean()) > 0:  # data-dependent: the trace keeps one branch
            return super().forward(x)
        return -super().forward(x)


def test_build_manifest_fills_what_the_case_says():
    manifest = build_manifest(EDDY, "my_closure", equation_parameters=("beta",))
    assert manifest["equation"] == "qg2layer" and manifest["callsite"] == "tendency"
    assert manifest["grid"]["shape"] == [64, 64] and manifest["grid"]["length"] == [1e6, 1e6]
    assert manifest["inputs"] == manifest["outputs"] == [{"field": "q", "space": "physical"}]
    assert manifest["dtype"] == "float64" and manifest["devices"] == ["cpu", "cuda"]
    assert manifest["equation_parameters"]["beta"] == 1.5e-11 and not manifest["stochastic"]
    emulator = build_manifest(KOLMOGOROV, "step", kind="emulator", space="spectral", grid="any", noise=["eta"])
    assert emulator["callsite"] == "replace" and emulator["grid"] == {"shape": "any", "length": "any"}
    assert emulator["noise"] == [{"name": "eta", "shape": ["ny", "nx"]}] and emulator["stochastic"]
    with pytest.raises(PluginError, match="kind 'corrector'"):
        build_manifest(EDDY, "x", kind="corrector")
    with pytest.raises(PluginError, match="equation.nonsense is not in the case"):
        build_manifest(EDDY, "x", equation_parameters=("nonsense",))
    with pytest.raises(PluginError, match="inputs.space"):
        build_manifest(EDDY, "x", space="fourier")


def test_unscriptable_module_exports_by_tracing_and_runs_in_the_host(tmp_path):
    module = PublishedClosure()
    manifest = build_manifest(KOLMOGOROV, "published", provenance={"paper": "someone (2026)"})
    path = str(tmp_path / "published.pt")
    with pytest.raises(PluginError, match="pass example="):
        export(module, manifest, path)
    x = torch.randn(4, 1, 64, 64, dtype=torch.float64)
    written = export(module, manifest, path, example=x)
    assert read_artifact(path)["sha256"] == written["sha256"]
    loaded = load_module(path)
    other = torch.randn(3, 1, 64, 64, dtype=torch.float64)  # another batch size than the example's
    torch.testing.assert_close(loaded(other, [], {}), module(other), rtol=1e-12, atol=1e-15)

    overrides = {"time.steps": 5, "ensemble.members": 2, "plugins": [{"path": path}]}
    sim = Simulation.from_case(KOLMOGOROV, overrides)
    w = sim.fields()["vorticity"]
    hook = sim.hooks[0]
    sim.start_hooks()
    tendency = hook(sim, sim.state)  # the host's tendency of the traced closure, spectral
    expected = module(torch.from_numpy(w[:, None])).detach().numpy()[:, 0]
    np.testing.assert_allclose(sim.equation.transforms.to_physical(tendency), expected, rtol=1e-9, atol=1e-12)
    sim.advance(5)
    assert np.isfinite(sim.state).all()


def test_stochastic_module_traces_with_its_noise(tmp_path):
    module = NoisyClosure()
    manifest = build_manifest(KOLMOGOROV, "noisy", noise=["eta"])
    x, eta = torch.randn(2, 1, 64, 64, dtype=torch.float64), torch.randn(2, 64, 64, dtype=torch.float64)
    with pytest.raises(PluginError, match=r"example should be a tuple \(x, \[noise tensors\]\)"):
        export(module, manifest, str(tmp_path / "noisy.pt"), example=x)
    export(module, manifest, str(tmp_path / "noisy.pt"), example=(x, [eta[:, None]]))
    loaded = load_module(str(tmp_path / "noisy.pt"))
    torch.testing.assert_close(loaded(x, [eta[:, None]], {}), module(x, [eta[:, None]]), rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the branch the test makes on purpose
def test_trace_that_differs_from_the_eager_module_is_refused(tmp_path):
    manifest = build_manifest(KOLMOGOROV, "branching")
    x = torch.ones(2, 1, 64, 64, dtype=torch.float64)  # mean > 0; the check's (x, -x) batch has mean 0
    with pytest.raises(PluginError, match="differs from the eager one"):
        export(Branching(), manifest, str(tmp_path / "branching.pt"), example=x)
    assert not os.path.exists(tmp_path / "branching.pt")
