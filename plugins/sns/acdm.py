"""ACDM (Kohl et al.): an autoregressive conditional diffusion model of the next frame.

The diffusion runs on the pair (conditioning x_{t-1}, target x_t) (B, 2, n, n) of
normalised vorticity, both noised to the same level s with independent noise, on the
linear beta schedule of S = 200 levels; the UNet, conditioned on an embedding of s,
predicts both noises (loss mean((eps_hat - eps)^2) over both channels,
:func:`acdm_loss`).  Sampling (:meth:`ACDM.sample`): the target starts from pure noise
x_t^S; at every reverse step s = S .. 1 the conditioning channel is a fresh noisy copy
sqrt(alpha_bar_s) x_{t-1} + sqrt(1 - alpha_bar_s) z of the clean previous frame, and the
target takes the ancestral step with its channel of eps_hat.  The host's noise per
member and call: the initial target (1, n, n), the conditioning copies (S, n, n) and the
reverse steps' noise (S, n, n): 2S + 1 fields, S network passes per emulator step.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .levels import LevelEmbedding
from .schedule import NoiseSchedule
from .unet import UNet

LEVELS = 200


class ACDM(nn.Module):
    def __init__(self, widths, blocks, levels=LEVELS):
        super().__init__()
        dim = 4 * widths[0]
        self.schedule = NoiseSchedule.linear(levels)
        self.embedding = LevelEmbedding(dim)
        self.net = UNet(2, 2, widths, blocks, cond_dim=dim)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """eps_hat (B, 2, n, n) of the noised pair x (B, 2, n, n) at levels ``s`` (B,)."""
        return self.net(x, self.embedding(s))

    @torch.jit.export
    def sample(self, prev: torch.Tensor, initial: torch.Tensor, conditioning: torch.Tensor,
               reverse: torch.Tensor) -> torch.Tensor:
        """The next frame (B, 1, n, n) after ``prev`` (B, 1, n, n), from the noise ``initial``
        (B, 1, n, n), ``conditioning`` and ``reverse`` (B, S, n, n) each (slot k: level S - k)."""
        levels = self.schedule.levels
        x = initial
        for k in range(levels):
            s = torch.full((prev.shape[0],), levels - k, dtype=torch.int64, device=prev.device)
            cond = self.schedule.noise(prev, s, conditioning[:, k:k + 1])
            eps = self.forward(torch.cat([cond, x], 1), s)
            x = self.schedule.reverse_step(x, s, eps[:, 1:], reverse[:, k:k + 1])
        return x


def acdm_loss(model, prev, cur, generator=None):
    """The training loss of pairs (B, 1, n, n) each, one snapshot apart."""
    pair = torch.cat([prev, cur], 1)
    s = torch.randint(1, model.schedule.levels + 1, (pair.shape[0],), generator=generator).to(pair.device)
    eps = torch.randn(pair.shape, generator=generator, dtype=pair.dtype).to(pair.device)
    return F.mse_loss(model(model.schedule.noise(pair, s, eps), s), eps)
