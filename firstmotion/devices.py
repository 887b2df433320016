"""The torch device a stage runs on, from its setting: ``auto``, ``cpu``, ``cuda[:N]``, ``mps``.

One resolution for every stage that runs a network (the learned picker, the polarity reader):
``auto`` takes CUDA where torch has it; a device this torch build cannot use is an
:class:`~firstmotion.errors.InputError` naming the setting (a CPU-only torch asked for
``cuda`` stopped a stage with torch's assertion and a traceback)."""

from __future__ import annotations

from firstmotion.errors import InputError


def torch_device(setting, option: str = "device"):
    """The ``torch.device`` of ``setting`` (a string or a device); ``option`` names the
    setting in the error."""
    import torch

    text = str(setting)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"{option}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {text!r}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{option}: {text!r}, but this torch ({torch.__version__}) has no "
                             "usable CUDA device; set it to 'auto' or 'cpu'")  # fmt: skip
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"{option}: {text!r}, but there are only "
                             f"{torch.cuda.device_count()} CUDA devices")  # fmt: skip
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{option}: 'mps', but this machine has no MPS device")
    return device
