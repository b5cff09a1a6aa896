"""The latent-SDE model's networks (the paper's appendix G.4): the microscale encoder's
strided convolutions and the decoder's transposed ones, with circular padding, and the
ReLU multilayer perceptrons of the drifts.

A strided convolution of kernel k, stride s and circular padding p = (k - 1) / 2 maps n
points to m = ceil(n / s) (the points 0, s, 2s, ... of the periodic grid; n / s when s
divides n, and the cylinder's 5 -> 2 when it does not); its transposed convolution maps
them back to n with the same circular wrap (torch's transposed convolution, its
overhang folded back onto the periodic grid of n points), so that the transposed layer
is the exact adjoint of the strided one.
Tensors are (batch, channels, *grid), 1D or 2D.
"""
import torch
from torch import nn
from torch.nn import functional as F

CONV = {1: F.conv1d, 2: F.conv2d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d}


def _circular(x, left, right, dims):
    return F.pad(x, (left, right) * dims, mode="circular")


def strided_sizes(grid, stride, layers):
    """The grid's shape before and after each of ``layers`` strided circular convolutions:
    ``layers + 1`` tuples, each axis ceil(n / stride) of the one before."""
    sizes = [tuple(grid)]
    for _ in range(layers):
        sizes.append(tuple(-(-n // stride) for n in sizes[-1]))
    return sizes


class CircularConv(nn.Module):
    """A strided convolution with circular padding, ``dims`` 1 or 2, odd ``kernel``."""

    def __init__(self, dims, channels_in, channels_out, kernel, stride):
        super().__init__()
        self.dims, self.stride, self.half = dims, stride, (kernel - 1) // 2
        layer = (nn.Conv1d if dims == 1 else nn.Conv2d)(channels_in, channels_out, kernel, stride)
        self.weight, self.bias = layer.weight, layer.bias

    def forward(self, x):
        return CONV[self.dims](_circular(x, self.half, self.half, self.dims), self.weight, self.bias,
                               stride=self.stride)


class CircularTransposedConv(nn.Module):
    """The transposed (adjoint) layer of a :class:`CircularConv` shape: n / s points to n."""

    def __init__(self, dims, channels_in, channels_out, kernel, stride):
        super().__init__()
        self.dims, self.stride, self.half = dims, stride, (kernel - 1) // 2
        layer = (nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d)(channels_in, channels_out, kernel, stride)
        self.weight, self.bias = layer.weight, layer.bias  # (in, out, *kernel), as torch's transposed layers

    def forward(self, x, size, bias=True):
        """The layer on ``x`` (batch, channels_in, *m) to (batch, channels_out, *size): ``size``
        the fine grid whose strided convolution gave m = ceil(size / s) points per axis."""
        s, d, p = self.stride, self.dims, self.half
        full = TRANSPOSED[d](x, self.weight, None, stride=s)  # (m - 1) s + k points per axis, no wrap
        for axis in range(2, 2 + d):  # fold the overhang back onto the periodic n points
            n = size[axis - 2]
            length = full.shape[axis]
            full = F.pad(full, [0, 0] * (full.dim() - axis - 1) + [0, -length % n])
            shape = full.shape[:axis] + (full.shape[axis] // n, n) + full.shape[axis + 1:]
            full = torch.roll(full.reshape(shape).sum(axis), -p, dims=axis)
        return full + self.bias.reshape((1, -1) + (1,) * d) if bias else full


def mlp(sizes, final_activation=False):
    """Linear layers of ``sizes`` (in, hidden..., out) with ReLU between them."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MicroEncoder(nn.Module):
    """E: the microscale residual y - S y (batch, channels, *grid) to eta's mean (batch, n_eta):
    strided circular convolutions of ``widths`` (ReLU between), then one linear layer."""

    def __init__(self, grid, channels, widths, kernel, stride, n_eta):
        super().__init__()
        dims = len(grid)
        sizes = [channels] + list(widths)
        self.convs = nn.ModuleList(CircularConv(dims, a, b, kernel, stride) for a, b in zip(sizes[:-1], sizes[1:]))
        coarse = strided_sizes(grid, stride, len(widths))[-1]
        self.linear = nn.Linear(widths[-1] * int(torch.tensor(coarse).prod()), n_eta)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.linear(x.flatten(1))


class MicroDecoder(nn.Module):
    """D: eta (batch, n_eta) to the microscale field (batch, channels, *grid), the mirror of
    :class:`MicroEncoder`: a linear layer, then transposed convolutions (ReLU between)."""

    def __init__(self, grid, channels, widths, kernel, stride, n_eta):
        super().__init__()
        dims = len(grid)
        self.sizes = strided_sizes(grid, stride, len(widths))  # the encoder's grids, layer by layer
        self.coarse = self.sizes[-1]
        self.width = widths[-1]
        self.linear = nn.Linear(n_eta, self.width * int(torch.tensor(self.coarse).prod()))
        sizes = list(reversed(widths)) + [channels]
        self.deconvs = nn.ModuleList(CircularTransposedConv(dims, a, b, kernel, stride)
                                     for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, eta):
        x = self.linear(eta).reshape((eta.shape[0], self.width) + self.coarse)
        for i, deconv in enumerate(self.deconvs):
            x = deconv(F.relu(x) if i else x, self.sizes[-2 - i])
        return x
