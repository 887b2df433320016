"""Polarity network architectures (PyTorch).

:class:`PolarityCNN` is the shipped model: a compact strided 1-D CNN over a short unit-peak
vertical window centred on the P pick (DiTingMotion uses 128 samples, PolarCAP 64, CFM 160),
ending in a small fully connected head that keeps the position of features relative to the
pick (no global pooling: *where* the first swing is matters as much as its shape). Three output
logits: [up, down, unknown].

:class:`RossPolarityCNN` is a baseline of the size of Ross et al. (2018)'s first-motion network
(4 s at 100 Hz = 400 samples, three conv blocks of 32/64/128 filters with kernels 21/15/11 and
max-pooling, two 512-unit dense layers); only used as the throughput reference in
``benchmarks/bench_polarity.py``.

.. seealso:: Ross, Meier & Hauksson (2018), JGR 123, 5120-5129; Zhao et al. (2023),
   DiTingMotion, SRL 94; Chakraborty et al. (2022), PolarCAP, GRL 49; Messuti et al. (2023),
   CFM, Computers & Geosciences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

LABELS = ("up", "down", "unknown")


class PolarityCNN(nn.Module):
    """Strided 1-D CNN: conv blocks (conv, batch-norm, ReLU) then a two-layer head.

    Parameters are stored in the model card's ``architecture.args``; the defaults are the
    shipped configuration.
    """

    def __init__(
        self,
        window_samples: int = 128,
        channels: Sequence[int] = (32, 48, 64, 96),
        kernels: Sequence[int] = (7, 5, 5, 3),
        strides: Sequence[int] = (2, 2, 2, 2),
        hidden: int = 96,
        dropout: float = 0.1,
        n_classes: int = 3,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if not len(channels) == len(kernels) == len(strides):
            raise ValueError("channels, kernels and strides must have the same length")
        layers: list[nn.Module] = []
        c_in, length = int(in_channels), int(window_samples)
        for c_out, k, s in zip(channels, kernels, strides, strict=True):
            layers += [
                nn.Conv1d(c_in, c_out, k, stride=s, padding=k // 2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            ]
            length = (length + 2 * (k // 2) - k) // s + 1
            c_in = c_out
        if length < 1:
            raise ValueError(f"window_samples={window_samples} too short for the strides")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * length, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 3) for windows (N, window_samples) or (N, in_channels, window_samples)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x))


class RossPolarityCNN(nn.Module):
    """Baseline of Ross et al. (2018)'s first-motion network size (400-sample input)."""

    def __init__(self, window_samples: int = 400, n_classes: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, length = 1, int(window_samples)
        for c_out, k in ((32, 21), (64, 15), (128, 11)):
            layers += [
                nn.Conv1d(c_in, c_out, k, padding=k // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),
            ]
            c_in, length = c_out, length // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * length, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "PolarityCNN": PolarityCNN,
    "RossPolarityCNN": RossPolarityCNN,
}


def build_model(name: str, args: dict) -> nn.Module:
    """Instantiate an architecture by its card name; ``ValueError`` for an unknown one."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[name](**args)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def inference_form(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference: each ``Conv1d`` followed by a ``BatchNorm1d`` in a
    ``Sequential`` becomes one ``Conv1d`` with the normalisation folded into its weights and
    bias (the batch norm's running statistics: eval mode), the ``BatchNorm1d`` an
    ``Identity``. Same output to float32 rounding, one pass less over every activation."""
    import copy

    out = copy.deepcopy(model).eval()
    for seq in [m for m in out.modules() if isinstance(m, nn.Sequential)]:
        mods = list(seq)
        for i in range(len(mods) - 1):
            conv, bn = mods[i], mods[i + 1]
            if not (isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)):
                continue
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
            fused = nn.Conv1d(conv.in_channels, conv.out_channels, conv.kernel_size,
                              stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                              groups=conv.groups, bias=True)  # fmt: skip
            with torch.no_grad():
                fused.weight.copy_(conv.weight.detach() * scale[:, None, None])
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias.detach())
            seq[i] = fused.eval()
            seq[i + 1] = nn.Identity()
    return out
