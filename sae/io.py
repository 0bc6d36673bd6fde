"""On-disk format: ``model.safetensors`` (tensors) + ``config.json`` (everything else).

Tensors are stored as float32/int64 exactly as they are in memory, so a round
trip reproduces the model bit for bit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_state(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``config`` (plus ``format_version``) into ``directory``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(path / TENSORS_FILE))
    payload = {"format_version": FORMAT_VERSION, **to_jsonable(config)}
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
    tmp.replace(path / CONFIG_FILE)
    return path


def load_state(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`save_state` wrote; tensors come back on the CPU."""
    path = Path(directory)
    config = json.loads((path / CONFIG_FILE).read_text())
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported SAE format version {version!r} (expected {FORMAT_VERSION})")
    return load_file(str(path / TENSORS_FILE)), config


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and non-finite floats (→ None) for JSON."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
