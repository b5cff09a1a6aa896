"""The self-refining neural surrogate's network and its refinement (Liu et al. 2025,
Algorithm 1, path A).

One network Phi sees the stack [x_0, x_{t-1}^{s2}, x_t^{s1}] (B, 3, n, n) of normalised
vorticity: a clean frame x_0 (at inference the rollout's first frame; in training a frame
drawn from the data, a sample of the invariant measure) and the pair (x_{t-1}, x_t)
noised independently to levels s1, s2, and is given no level.  Two heads on the
bottleneck classify s1 and s2 (S logits each); their softmax probabilities, through an
MLP (2S -> dim -> dim), add per-channel biases in every decoder block; the decoder's two
channels predict the noises (eps of x_t, eps' of x_{t-1}).  Training
(:func:`sns_loss`): s1, s2 ~ U{1..S} on the cosine schedule, loss mean((eps_hat -
eps)^2) + mean((eps_hat' - eps')^2) + lambda (CE(s1) + CE(s2)), lambda = 0.1 (means over
points, where the paper writes the squared norm).

Refinement (:meth:`SelfRefiner.refine`) of a surrogate's frame x_t given the previous frame x_{t-1}:
the heads on the clean pair give (s1_hat, s2_hat); both frames are re-noised to those
levels with fresh noise; x_{t-1} is denoised from s2_hat to 0 with x_t held at
x_t^{s1_hat}; then x_t from s1_hat to 0 conditioned on that refined x_{t-1}.  The refined
x_{t-1} only conditions: the stored previous frame is not changed.  The host's noise is
(B, 2 + 2 max_level, n, n) per call: the two re-noisings, then one field per reverse step
of each frame, so both levels are capped at ``max_level``.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .levels import LevelHead, level_loss, predicted_level
from .schedule import NoiseSchedule
from .unet import UNet

LEVELS = 1000
WEIGHT = 0.1  # lambda, the weight of the level classification


class SelfRefiner(nn.Module):
    def __init__(self, widths, blocks, levels=LEVELS):
        super().__init__()
        dim = 4 * widths[0]
        self.schedule = NoiseSchedule.cosine(levels)
        self.net = UNet(3, 2, widths, blocks, cond_dim=dim)
        self.head_t = LevelHead(widths[-1], levels)
        self.head_prev = LevelHead(widths[-1], levels)
        self.condition = nn.Sequential(nn.Linear(2 * levels, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x0: torch.Tensor, prev: torch.Tensor, cur: torch.Tensor):
        """(eps_hat of cur, eps_hat of prev (B, 1, n, n) each, logits of s1 and of s2 (B, S)
        each) of frames (B, 1, n, n)."""
        skips, h = self.net.encode(torch.cat([x0, prev, cur], 1))
        logits_t, logits_prev = self.head_t(h), self.head_prev(h)
        cond = self.condition(torch.cat([F.softmax(logits_t, 1), F.softmax(logits_prev, 1)], 1))
        eps = self.net.decode(skips, h, cond)
        return eps[:, :1], eps[:, 1:], logits_t, logits_prev

    @torch.jit.export
    def denoise(self, x0: torch.Tensor, prev: torch.Tensor, cur: torch.Tensor, s_hat: torch.Tensor,
                noise: torch.Tensor, first: int, which: int) -> torch.Tensor:
        """Denoise ``cur`` (which = 0) or ``prev`` (which = 1) from its levels ``s_hat`` (B,)
        to 0, the other frame fixed; the k-th reverse step of a row takes noise[:, first + k]."""
        rows = torch.arange(s_hat.shape[0], device=s_hat.device)
        x = cur if which == 0 else prev
        for s in range(int(s_hat.max()), 0, -1):
            now = s_hat >= s
            eps = self.forward(x0, prev, x)[0] if which == 0 else self.forward(x0, x, cur)[1]
            level = torch.full_like(s_hat, s)
            z = noise[rows, first + (s_hat - s).clamp(min=0)].unsqueeze(1)
            x = torch.where(now[:, None, None, None], self.schedule.reverse_step(x, level, eps, z), x)
        return x

    @torch.jit.export
    def refine(self, x0: torch.Tensor, prev: torch.Tensor, cur: torch.Tensor, noise: torch.Tensor):
        """(the refined x_t (B, 1, n, n), reverse steps taken s1_hat + s2_hat (B,) int64) of
        the surrogate's ``cur`` after ``prev``, with the host's noise (B, 2 + 2 max_level, n, n)."""
        cap = (noise.shape[1] - 2) // 2
        _, _, logits_t, logits_prev = self.forward(x0, prev, cur)
        s1, s2 = predicted_level(logits_t, cap), predicted_level(logits_prev, cap)
        cur = self.schedule.noise(cur, s1, noise[:, :1])
        prev = self.schedule.noise(prev, s2, noise[:, 1:2])
        prev = self.denoise(x0, prev, cur, s2, noise, 2, 1)
        cur = self.denoise(x0, prev, cur, s1, noise, 2 + cap, 0)
        return cur, s1 + s2


def sns_loss(model, x0, prev, cur, generator=None):
    """The training loss of clean frames (B, 1, n, n) each: x0 a data frame, (prev, cur) a
    pair one snapshot apart."""
    levels = model.schedule.levels
    s1 = torch.randint(1, levels + 1, (cur.shape[0],), generator=generator).to(cur.device)
    s2 = torch.randint(1, levels + 1, (cur.shape[0],), generator=generator).to(cur.device)
    eps = torch.randn(cur.shape, generator=generator, dtype=cur.dtype).to(cur.device)
    eps_prev = torch.randn(cur.shape, generator=generator, dtype=cur.dtype).to(cur.device)
    eps_hat, eps_prev_hat, logits_t, logits_prev = model(
        x0, model.schedule.noise(prev, s2, eps_prev), model.schedule.noise(cur, s1, eps))
    return (F.mse_loss(eps_hat, eps) + F.mse_loss(eps_prev_hat, eps_prev)
            + WEIGHT * (level_loss(logits_t, s1) + level_loss(logits_prev, s2)))
