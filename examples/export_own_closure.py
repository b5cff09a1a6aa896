"""Bring your own trained closure: export an authors' PyTorch module and run it from a case.

    python examples/export_own_closure.py [--out my_closure.pt] [--steps 100]

The authors' ``forward(x)`` takes the physical vorticity ``(M, 1, ny, nx)`` and uses
Python TorchScript cannot compile (a lambda), so ``export(..., example=x)`` traces it and
checks the trace against the module; ``build_manifest`` fills what the case already says
(equation, grid, fields, space, dtype, devices).  The weights here are the untrained
initialisation: load yours with ``model.load_state_dict(torch.load(path))``.
"""
import argparse
import os

import torch

from hybridsolver import Simulation
from hybridsolver.plugin import build_manifest, export

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "kolmogorov64.toml")


class AuthorsCNN(torch.nn.Module):
    """A small periodic CNN closure as a paper's code might write it."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Conv2d(a, b, 5, padding=2, padding_mode="circular")
                                          for a, b in ((1, 8), (8, 8), (8, 1)))

    def forward(self, x):
        act = lambda t: torch.nn.functional.gelu(t)  # noqa: E731  (TorchScript cannot script a lambda)
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return 1e-3 * self.layers[-1](x)


def main(argv=None):
    """Export the module and run the case with it; returns the summary of the plugin's calls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--out", default="my_closure.pt")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)

    model = AuthorsCNN().double().eval()                     # model.load_state_dict(torch.load("weights.pt"))
    manifest = build_manifest(args.case, "authors_cnn", description="the authors' CNN closure",
                              provenance={"paper": "Someone et al. (2026)", "weights": "untrained example"})
    example = torch.zeros((1, 1) + tuple(manifest["grid"]["shape"]), dtype=torch.float64)
    export(model, manifest, args.out, example=example)       # traced, checked, hashed, written
    sim = Simulation.from_case(args.case, {"time.steps": args.steps, "plugins": [{"path": args.out, "every": 5}]})
    sim.advance(args.steps)
    report = sim.hook_report()["authors_cnn"]
    print(f"{args.out}: {report['calls']} batched calls for {len(sim.members)} members, "
          f"{report['mean_ms']:.2f} ms per call; mean enstrophy {sim.diagnostics()['enstrophy'].mean():.4f}")
    return report


if __name__ == "__main__":
    main()
