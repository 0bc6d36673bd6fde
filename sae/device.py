"""Device selection and the per-device numeric settings used for training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None``/``"cpu"``/``"cuda[:i]"``/``"mps"`` into a ``torch.device``.

    ``"auto"`` prefers CUDA, then Apple MPS, then the CPU. Asking explicitly for an
    accelerator that is not available raises ``RuntimeError``.
    """
    if isinstance(name, torch.device):
        device = name
    elif name is None or str(name).lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    else:
        device = torch.device(str(name).lower())
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but CUDA is not available")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError("device 'mps' requested but MPS is not available")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (CPU/MPS train in float32)."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fast_matmul(device: torch.device) -> Iterator[None]:
    """Allow TF32 matmuls on CUDA for the duration of the block, then restore the setting."""
    if device.type != "cuda":
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)
