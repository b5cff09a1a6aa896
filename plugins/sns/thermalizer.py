"""Thermalizer (Pedersen et al. 2025): an unconditional DDPM of single snapshots with a
noise-level classifier on its bottleneck, which pulls an emulator's drifting frames back to
the data's distribution.

Fields are normalised vorticity (B, 1, n, n).  The noise prediction eps_hat(x^s, s) is the
UNet conditioned on an embedding of s (decoder biases); the classifier reads the
bottleneck, which does not see s, and gives S logits (levels 1 .. S).  Training
(:func:`thermalizer_loss`): s ~ U{1..S}, x^s = sqrt(alpha_bar_s) x + sqrt(1 - alpha_bar_s)
eps on the cosine schedule, loss mean((eps_hat - eps)^2) + cross-entropy of s.

In a rollout (:meth:`Thermalizer.thermalize`), after every emulator step: s_hat = the classifier's
argmax level of the frame; if s_hat > ``s_init`` (10) the frame, taken as x^{s_hat},
is denoised by ancestral steps down to level ``s_stop`` (4); otherwise it is kept.  The
fresh noise of the reverse steps comes from the host, ``max_steps`` fields per member, so
s_hat is capped at s_stop + max_steps.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .levels import LevelEmbedding, LevelHead, level_loss, predicted_level
from .schedule import NoiseSchedule
from .unet import UNet

LEVELS = 1000
S_INIT, S_STOP = 10, 4


class Thermalizer(nn.Module):
    def __init__(self, widths, blocks, levels=LEVELS):
        super().__init__()
        dim = 4 * widths[0]
        self.schedule = NoiseSchedule.cosine(levels)
        self.embedding = LevelEmbedding(dim)
        self.net = UNet(1, 1, widths, blocks, cond_dim=dim)
        self.head = LevelHead(widths[-1], levels)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Level logits (B, S) of frames x (B, 1, n, n)."""
        return self.head(self.net.encode(x)[1])

    def forward(self, x: torch.Tensor, s: torch.Tensor):
        """(eps_hat (B, 1, n, n), level logits (B, S)) of x^s at levels ``s`` (B,)."""
        skips, h = self.net.encode(x)
        return self.net.decode(skips, h, self.embedding(s)), self.head(h)

    @torch.jit.export
    def thermalize(self, x: torch.Tensor, noise: torch.Tensor, s_init: int = S_INIT, s_stop: int = S_STOP):
        """(the thermalized frames (B, 1, n, n), reverse steps taken (B,) int64) of frames
        ``x`` with the host's noise (B, max_steps, n, n)."""
        rows = torch.arange(x.shape[0], device=x.device)
        s_hat = predicted_level(self.classify(x), s_stop + noise.shape[1])
        active = s_hat > s_init
        top = int(torch.where(active, s_hat, torch.zeros_like(s_hat)).max())
        for s in range(top, s_stop, -1):
            now = active & (s_hat >= s)
            level = torch.full_like(s_hat, s)
            eps_hat = self.forward(x, level)[0]
            z = noise[rows, (s_hat - s).clamp(min=0)].unsqueeze(1)
            x = torch.where(now[:, None, None, None], self.schedule.reverse_step(x, level, eps_hat, z), x)
        return x, torch.where(active, s_hat - s_stop, torch.zeros_like(s_hat))


def thermalizer_loss(model, x, generator=None):
    """The training loss of clean frames ``x`` (B, 1, n, n)."""
    s = torch.randint(1, model.schedule.levels + 1, (x.shape[0],), generator=generator)
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    s, eps = s.to(x.device), eps.to(x.device)
    eps_hat, logits = model(model.schedule.noise(x, s, eps), s)
    return F.mse_loss(eps_hat, eps) + level_loss(logits, s)
