"""PhaseNet (Zhu & Beroza 2019) in PyTorch: the network, its TensorFlow-equivalent padding,
and the conversion of the original TensorFlow variables.

The original graph (AI4EPS/PhaseNet, ``phasenet/model.py``) is a 1-D U-Net written with 2-D
TensorFlow layers of width 1: an input convolution (8 filters, kernel 7, bias, batch norm,
ReLU); five down levels, each a kernel-7 convolution (no bias, batch norm, ReLU) whose output
is kept as the skip, followed (except at the deepest level) by a kernel-7 convolution of
stride 4; four up levels, each a transposed kernel-7 convolution of stride 4, the skip of
that level concatenated before it (the upsampled tensor cropped to the skip's length, centred),
and a kernel-7 convolution; a 1x1 output convolution (3 classes, bias) and a softmax over
(noise, P, S). Batch norm uses TensorFlow's epsilon 1e-3. All convolutions use TensorFlow's
``'same'`` padding: an output of ``ceil(n / stride)`` samples with the ``pad_total`` samples
split ``pad_total // 2`` before and the rest after (:func:`tf_same_padding`); a transposed
convolution gives ``n * stride`` samples, the full transposed output cropped from
``pad_total // 2``.

The network takes any window length (the original 3,000 samples and SeisBench's 3,001 alike);
input ``(batch, 3, samples)`` in the order E, N, Z at 100 Hz, each channel normalised to zero
mean and unit standard deviation over the window (:func:`normalise_windows`); output
``(batch, 3, samples)`` probabilities.

.. seealso:: Zhu, W. & Beroza, G. C. (2019), PhaseNet: a deep-neural-network-based seismic
   arrival-time picking method, Geophys. J. Int. 216(1), 261-273, doi:10.1093/gji/ggy423.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LABELS = ("noise", "P", "S")
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon


def tf_same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)`` samples of TensorFlow's ``'same'`` padding for a convolution of
    ``n`` input samples: ``ceil(n / stride)`` outputs."""
    out = -(-n // stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


class SameConv1d(nn.Conv1d):
    """``Conv1d`` with TensorFlow's ``'same'`` padding (asymmetric where TF pads so)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = tf_same_padding(x.shape[-1], self.kernel_size[0], self.stride[0])
        if before == after:  # symmetric: the convolution pads itself (no padded copy)
            return F.conv1d(x, self.weight, self.bias, self.stride, before)
        return super().forward(F.pad(x, (before, after)))


class SameConvTranspose1d(nn.ConvTranspose1d):
    """``ConvTranspose1d`` with TensorFlow's ``'same'`` output: ``n * stride`` samples of the
    full transposed output, from ``pad_total // 2`` (the gradient of a ``'same'`` strided
    convolution over ``n * stride`` samples)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, s = x.shape[-1], self.kernel_size[0], self.stride[0]
        full = super().forward(x)
        before, _ = tf_same_padding(n * s, k, s)
        return full[..., before : before + n * s]


def _bn(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=BN_EPS)


class PhaseNet(nn.Module):
    """The PhaseNet U-Net (see the module docstring); the defaults are the original's."""

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 3,
        depth: int = 5,
        filters_root: int = 8,
        kernel_size: int = 7,
        stride: int = 4,
    ) -> None:
        super().__init__()
        self.depth, self.stride = int(depth), int(stride)
        k = int(kernel_size)
        self.inc = SameConv1d(in_channels, filters_root, k)
        self.in_bn = _bn(filters_root)
        self.down_conv = nn.ModuleList()
        self.down_bn = nn.ModuleList()
        self.pool_conv = nn.ModuleList()
        self.pool_bn = nn.ModuleList()
        last = filters_root
        for level in range(self.depth):
            filters = filters_root * 2**level
            self.down_conv.append(SameConv1d(last, filters, k, bias=False))
            self.down_bn.append(_bn(filters))
            if level < self.depth - 1:
                self.pool_conv.append(SameConv1d(filters, filters, k, stride=stride, bias=False))
                self.pool_bn.append(_bn(filters))
            last = filters
        self.up_conv = nn.ModuleList()
        self.up_bn = nn.ModuleList()
        self.merge_conv = nn.ModuleList()
        self.merge_bn = nn.ModuleList()
        for level in range(self.depth - 2, -1, -1):  # deepest first, as the forward pass
            filters = filters_root * 2**level
            self.up_conv.append(SameConvTranspose1d(last, filters, k, stride=stride, bias=False))
            self.up_bn.append(_bn(filters))
            self.merge_conv.append(SameConv1d(2 * filters, filters, k, bias=False))
            self.merge_bn.append(_bn(filters))
            last = filters
        self.out = nn.Conv1d(last, classes, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax output ``(batch, classes, samples)`` of input ``(batch, 3, samples)``."""
        x = torch.relu(self.in_bn(self.inc(x)))
        skips = []
        for level in range(self.depth):
            x = torch.relu(self.down_bn[level](self.down_conv[level](x)))
            skips.append(x)
            if level < self.depth - 1:
                x = torch.relu(self.pool_bn[level](self.pool_conv[level](x)))
        for i, level in enumerate(range(self.depth - 2, -1, -1)):
            skip = skips[level]
            x = torch.relu(self.up_bn[i](self.up_conv[i](x)))
            offset = (x.shape[-1] - skip.shape[-1]) // 2
            x = torch.cat([skip, x[..., offset : offset + skip.shape[-1]]], dim=1)
            x = torch.relu(self.merge_bn[i](self.merge_conv[i](x)))
        return self.out(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(batch, classes, samples)`` (softmax over noise, P, S)."""
        return torch.softmax(self.logits(x), dim=1)


def normalise_windows(x: np.ndarray) -> np.ndarray:
    """Each window's channels to zero mean and unit standard deviation over the window (a flat
    channel stays zero), as PhaseNet was trained: ``x`` ``(..., channels, samples)``."""
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return np.divide(x, std, out=np.zeros_like(x), where=std > 0)


# --------------------------------------------------------------------------- conversion


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """TF conv kernel ``(kh, 1, in, out)`` -> torch ``(out, in, kh)``."""
    return torch.from_numpy(np.ascontiguousarray(kernel[:, 0].transpose(2, 1, 0)))


def _transpose_weight(kernel: np.ndarray) -> torch.Tensor:
    """TF transposed-conv kernel ``(kh, 1, out, in)`` -> torch ``(in, out, kh)``."""
    return torch.from_numpy(np.ascontiguousarray(kernel[:, 0].transpose(2, 1, 0)))


def state_dict_from_tf(variables: Mapping[str, np.ndarray], depth: int = 5) -> dict:
    """A :class:`PhaseNet` state dict from the original TensorFlow variables (keys are TF
    variable names with ``/`` written ``|``, as in ``variables.npz``)."""

    def v(name: str) -> np.ndarray:
        return np.asarray(variables[name], dtype=np.float32)

    def bn(prefix: str, tf: str) -> dict:
        return {
            f"{prefix}.weight": torch.from_numpy(v(f"{tf}|gamma")),
            f"{prefix}.bias": torch.from_numpy(v(f"{tf}|beta")),
            f"{prefix}.running_mean": torch.from_numpy(v(f"{tf}|moving_mean")),
            f"{prefix}.running_var": torch.from_numpy(v(f"{tf}|moving_variance")),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }

    sd: dict = {
        "inc.weight": _conv_weight(v("Input|input_conv|kernel")),
        "inc.bias": torch.from_numpy(v("Input|input_conv|bias")),
        **bn("in_bn", "Input|input_bn"),
        "out.weight": _conv_weight(v("Output|output_conv|kernel")),
        "out.bias": torch.from_numpy(v("Output|output_conv|bias")),
    }
    for level in range(depth):
        scope = f"DownConv_{level}"
        sd[f"down_conv.{level}.weight"] = _conv_weight(v(f"{scope}|down_conv1_{level + 1}|kernel"))
        sd.update(bn(f"down_bn.{level}", f"{scope}|down_bn1_{level + 1}"))
        if level < depth - 1:
            sd[f"pool_conv.{level}.weight"] = _conv_weight(
                v(f"{scope}|down_conv3_{level + 1}|kernel")
            )
            sd.update(bn(f"pool_bn.{level}", f"{scope}|down_bn3_{level + 1}"))
    for i, level in enumerate(range(depth - 2, -1, -1)):
        scope = f"UpConv_{level}"
        sd[f"up_conv.{i}.weight"] = _transpose_weight(v(f"{scope}|up_conv0_{level + 1}|kernel"))
        sd.update(bn(f"up_bn.{i}", f"{scope}|up_bn0_{level + 1}"))
        sd[f"merge_conv.{i}.weight"] = _conv_weight(v(f"{scope}|up_conv1_{level + 1}|kernel"))
        sd.update(bn(f"merge_bn.{i}", f"{scope}|up_bn1_{level + 1}"))
    return sd


def from_tf_variables(path: str) -> PhaseNet:
    """A :class:`PhaseNet` in eval mode with the weights of a ``variables.npz``."""
    with np.load(path) as npz:
        variables = {k: npz[k] for k in npz.files}
    model = PhaseNet()
    model.load_state_dict(state_dict_from_tf(variables))
    return model.eval()


def self_check_input() -> np.ndarray:
    """A fixed input ``(1, 3, 3000)``: unit noise with a decaying oscillation from sample 1500
    on every channel. The model card records the converted network's output on it, so the
    shipped weights can be checked without the reference files."""
    rng = np.random.default_rng(20190701)
    x = rng.standard_normal((1, 3, 3000)).astype(np.float32)
    t = np.arange(1500, 3000)
    x[:, :, 1500:] += (8.0 * np.exp(-(t - 1500) / 50.0) * np.sin(t / 3.0)).astype(np.float32)
    return x


# --------------------------------------------------------------------------- inference form


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm1d, out_dim: int):
    """``(weight, bias)`` of a convolution followed by batch norm in eval mode, as one
    convolution: each output channel scaled by ``gamma / sqrt(var + eps)``, the bias shifted
    (``out_dim``: the weight's output-channel axis, 0 for a convolution, 1 for a transposed
    one)."""
    w = weight.detach().double()
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shape = [1] * w.ndim
    shape[out_dim] = -1
    b = bias.detach().double() if bias is not None else torch.zeros_like(scale)
    folded_b = (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()
    return (w * scale.reshape(shape)).float().contiguous(), folded_b.float().contiguous()


def polyphase_weight(weight: torch.Tensor, stride: int, before: int) -> tuple[torch.Tensor, int]:
    """A transposed convolution (torch weight ``(in, out, k)``, stride ``stride``) cropped from
    ``before`` as one ordinary convolution: ``(weight (stride * out, in, taps), left_pad)``
    whose output channel ``r * out + o`` is output sample ``stride * m + r`` of channel ``o``.

    Output ``u = s m + r`` of the cropped transposed convolution is ``sum_d x[m + d]
    W[r + before - s d]`` over the taps ``0 <= r + before - s d < k``: a correlation over the
    input offsets ``d``, the same for every ``m`` (exact, no interpolation)."""
    cin, cout, k = weight.shape
    s = int(stride)
    offsets = sorted({d for r in range(s) for d in range(-k, k + 1) if 0 <= r + before - s * d < k})
    d_lo = offsets[0]
    taps = offsets[-1] - d_lo + 1
    w = torch.zeros(s, cout, cin, taps, dtype=weight.dtype)
    for r in range(s):
        for t in range(taps):
            kk = r + before - s * (d_lo + t)
            if 0 <= kk < k:
                w[r, :, :, t] = weight[:, :, kk].T
    return w.reshape(s * cout, cin, taps).contiguous(), -d_lo


CL = torch.channels_last


def _cl(w: torch.Tensor) -> torch.Tensor:
    """A 1-D convolution weight ``(out, in, k)`` as a channels-last 2-D one ``(out, in, 1, k)``."""
    return w.unsqueeze(2).contiguous(memory_format=CL)


class InferencePhaseNet(nn.Module):
    """The same network as a :class:`PhaseNet` in eval mode, rearranged for inference: every
    batch norm folded into the convolution before it; every transposed convolution written as
    one ordinary convolution over the stride's phases (:func:`polyphase_weight`, exact); the
    signals carried as channels-last 2-D tensors ``(batch, channels, 1, samples)`` stored
    sample-major, the layout oneDNN's CPU convolutions run fastest on (about 2-3x the
    channels-first 1-D form on the full-rate layers), in which interleaving the stride's
    phases is a free reshape. TensorFlow's ``'same'`` padding is given to the convolution
    where it is symmetric. Equal to the training form up to float rounding (tested);
    input ``(batch, 3, samples)``, output ``(batch, classes, samples)`` as :class:`PhaseNet`."""

    def __init__(self, net: PhaseNet) -> None:
        super().__init__()
        self.depth, self.stride = net.depth, net.stride
        self.kernel = net.inc.kernel_size[0]

        def conv(c, bn):
            w, b = _fold_bn(c.weight, c.bias, bn, 0)
            return nn.Parameter(_cl(w), requires_grad=False), nn.Parameter(b, requires_grad=False)

        self.inc_w, self.inc_b = conv(net.inc, net.in_bn)
        self.down = nn.ParameterList()
        for level in range(self.depth):
            self.down.extend(conv(net.down_conv[level], net.down_bn[level]))
        self.pool = nn.ParameterList()
        for level in range(self.depth - 1):
            self.pool.extend(conv(net.pool_conv[level], net.pool_bn[level]))
        self.merge = nn.ParameterList()
        for i in range(self.depth - 1):
            self.merge.extend(conv(net.merge_conv[i], net.merge_bn[i]))
        self.up = nn.ParameterList()
        self.up_channels: list[int] = []
        self.up_pad: list[int] = []
        s, k = self.stride, self.kernel
        before, _ = tf_same_padding(s, k, s)  # the crop of n * s outputs (the same for every n)
        for i in range(self.depth - 1):
            w, b = _fold_bn(net.up_conv[i].weight, None, net.up_bn[i], 1)
            pw, pad = polyphase_weight(w, s, before)
            self.up.append(nn.Parameter(_cl(pw), requires_grad=False))
            self.up.append(nn.Parameter(b.repeat(s), requires_grad=False))
            self.up_channels.append(w.shape[1])
            self.up_pad.append(pad)
        self.out_w = nn.Parameter(_cl(net.out.weight.detach()), requires_grad=False)
        self.out_b = nn.Parameter(net.out.bias.detach().clone(), requires_grad=False)

    @staticmethod
    def _conv(x, w, b, stride: int, before: int, after: int):
        if before == after:
            return F.conv2d(x, w, b, (1, stride), (0, before))
        x = F.pad(x, (before, after)).contiguous(memory_format=CL)
        return F.conv2d(x, w, b, (1, stride))

    def _same(self, x, w, b, stride: int = 1):
        before, after = tf_same_padding(x.shape[-1], w.shape[-1], stride)
        return torch.relu_(self._conv(x, w, b, stride, before, after))

    def _up(self, x, i: int):
        w, b = self.up[2 * i], self.up[2 * i + 1]
        left = self.up_pad[i]
        y = torch.relu_(self._conv(x, w, b, 1, left, w.shape[-1] - 1 - left))
        batch, n, s, c = y.shape[0], x.shape[-1], self.stride, self.up_channels[i]
        # channels-last (batch, s * c, 1, n) is stored (batch, n, s, c): phase r of sample m
        # is output s m + r, so (batch, c, 1, n * s) is the same memory
        y = y.contiguous(memory_format=CL).permute(0, 2, 3, 1).reshape(batch, 1, n * s, c)
        return y.permute(0, 3, 1, 2)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(2).contiguous(memory_format=CL)
        x = self._same(x, self.inc_w, self.inc_b)
        skips = []
        for level in range(self.depth):
            x = self._same(x, self.down[2 * level], self.down[2 * level + 1])
            skips.append(x)
            if level < self.depth - 1:
                x = self._same(x, self.pool[2 * level], self.pool[2 * level + 1], self.stride)
        for i, level in enumerate(range(self.depth - 2, -1, -1)):
            skip = skips[level]
            x = self._up(x, i)
            offset = (x.shape[-1] - skip.shape[-1]) // 2
            x = torch.cat([skip, x[..., offset : offset + skip.shape[-1]]], dim=1)
            x = self._same(x.contiguous(memory_format=CL), self.merge[2 * i], self.merge[2 * i + 1])
        return F.conv2d(x, self.out_w, self.out_b)[:, :, 0, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)
