"""The trained latent SDE as a stateful stochastic emulator (a ``replace`` TorchScript module).

A member's sample path of the latent SDE is its trajectory: at the member's first call the
latent state starts from the encoder, z = mu_z(y) + sqrt(Sigma_z) xi_0, and every call
advances it over h = every dt by ``substeps`` Euler-Maruyama steps,

    z <- z + gamma(z, t) h_s + L sqrt(h_s) xi_s,   h_s = h / substeps,

with the host's standard-normal noise (``xi_0`` (n_z,) and ``xi`` (substeps, n_z) per
member), and returns the product-of-experts mean mu_y(z) of the new latent state as the
member's field.  z (n_z,) float32 is the plugin's state, held by the host between calls.
The SDE's time is the host's model time (``options["time"]``), which the drift sees as
sin t, cos t: the data's absolute time.

The encoder, drift and decoder are traced from the trained :class:`~.model.LatentSDE`
(float32) for batches of ``CHUNK`` members, the Euler-Maruyama loop around them is
scripted.  The members go through in chunks of ``CHUNK`` (the last one padded with
zeros): oneDNN's convolutions and the GEMMs pick their kernels by the batch size, so a
member's bits would otherwise change with the batch, and the host's contract is that
batching never changes a member.  A chunk of 64, the size of the predictive ensemble,
runs it in one pass (8 members per chunk took about twice as long); a smaller ensemble pays
for 64 members.  Input and output: physical fields float64 (B, C, *grid).
"""
from typing import Dict, List, Tuple

import torch
from torch import nn

CHUNK = 64  # members per call of the traced networks


class _Encode(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y):
        return self.model.encode(y)


class _Drift(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z, t):
        return self.model.drift(z, t)


class _Decode(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z):
        return self.model.decode(z)[0]


class LatentSDEEmulator(nn.Module):
    """The emulator of a trained ``model`` (float32 :class:`~.model.LatentSDE`, eval mode)."""

    def __init__(self, model):
        super().__init__()
        c = model.config
        y = torch.zeros((CHUNK, c.channels) + tuple(c.grid), dtype=torch.float32)
        with torch.no_grad():
            z = model.encode(y)
            t = torch.zeros(CHUNK, dtype=torch.float32)
            self.encode = torch.jit.trace(_Encode(model), (y,))
            self.drift = torch.jit.trace(_Drift(model), (z, t))
            self.decode = torch.jit.trace(_Decode(model), (z,))
            self.register_buffer("encoder_std", torch.exp(0.5 * model.log_var_z.detach()).float())
            self.register_buffer("diffusion", torch.nn.functional.softplus(model.raw_diffusion.detach()).float())
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float],
                state: List[torch.Tensor]) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        rows = x.shape[0]
        chunk = self.chunk
        missing = -rows % chunk
        inputs = [x.float(), noise[0].float(), noise[1].float(), state[0]]
        if missing:
            inputs = [torch.cat([a, a.new_zeros([missing] + a.shape[1:])]) for a in inputs]
        fields: List[torch.Tensor] = []
        latents: List[torch.Tensor] = []
        for start in range(0, rows + missing, chunk):
            end = start + chunk
            field, z = self._chunk(inputs[0][start:end], inputs[1][start:end], inputs[2][start:end],
                                   inputs[3][start:end], options)
            fields.append(field)
            latents.append(z)
        return torch.cat(fields)[:rows].double(), [torch.cat(latents)[:rows]]

    def _chunk(self, x: torch.Tensor, initial: torch.Tensor, increments: torch.Tensor, z: torch.Tensor,
               options: Dict[str, float]) -> Tuple[torch.Tensor, torch.Tensor]:
        """One chunk of ``CHUNK`` members: (mu_y (CHUNK, C, *grid), z (CHUNK, n_z)) after the call."""
        if options["first"] > 0.5:
            z = self.encode(x) + self.encoder_std * initial
        substeps = int(options["substeps"])
        h = options["every"] * options["dt"] / substeps
        increments = increments * (self.diffusion * h ** 0.5)
        t = torch.full((x.shape[0],), options["time"], dtype=torch.float64, device=x.device)
        for s in range(substeps):
            z = z + self.drift(z, (t + s * h).float()) * h + increments[:, s]
        return self.decode(z), z
