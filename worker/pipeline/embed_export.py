"""Exported encoders for the CPU: the model as ONNX or OpenVINO IR (made once, kept in a folder), optionally
quantized to int8, run by :class:`FastEncoder`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from worker.pipeline.embed_models import Backend, resolve_model_path, stay_offline

#: Bump when the export changes (invalidates exported models, not embeddings).
EXPORT_VERSION = 1
#: Texts per batch of the exported backends (sorted by length, so padding is small).
FAST_BATCH_SIZE = 16


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


def default_export_dir() -> Path:
    """Where exported models are kept when no folder is given."""
    return Path(tempfile.gettempdir()) / "feedback-themes-models"


def exported_model(model_name: str, kind: str, directory: Path | None = None, calibration_csv: str | None = None) -> Path:
    """The exported model file for ``kind`` in ``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``: made once
    (atomically: several workers may race) and reused from the cache folder afterwards."""
    folder = Path(directory or default_export_dir()) / _export_name(model_name)
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
                source = exported_model(model_name, "openvino", directory)
                _save_openvino(_quantize_openvino(model_name, source, calibration_texts(calibration_csv)), part)
            if part.suffix == ".xml":  # the weights file first, so that the .xml appearing means complete
                os.replace(part.with_suffix(".bin"), target.with_suffix(".bin"))
            os.replace(part, target)
    return target


def _mean_pooled_bert(model_name: str):  # -> torch.nn.Module
    """A plain torch module: BERT encoder → mean pooling → L2 normalisation, taking (input_ids, attention_mask).

    Written out (not the transformers forward) so the ONNX export traces cleanly with dynamic shapes."""
    stay_offline()
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


def calibration_texts(path: str | None) -> list[str]:
    """Deterministic texts for int8 calibration: the ``text`` column of a CSV, alone and joined into long ones."""
    if not path:
        raise ValueError("static int8 quantization needs calibration texts (Backend.calibration_csv)")
    with open(path, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f) if row.get("text")]
    joined = [" ".join(texts[i : i + n]) for n in (3, 6, 12) for i in range(0, len(texts), n)]
    return texts + joined


def _quantize_openvino(model_name: str, source: Path, texts: list[str]):
    """Static int8 (weights and activations) with NNCF, calibrated on ``texts``."""
    import nncf

    tokenizer = _tokenizer(model_name, None)
    texts = sorted(texts, key=len)
    batches = [_tokenize(tokenizer, texts[i : i + 8]) for i in range(0, len(texts), 8)]
    dataset = nncf.Dataset([{"input_ids": ids, "attention_mask": mask} for ids, mask in batches])
    return nncf.quantize(_read_openvino(source), dataset, model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(batches))  # fmt: skip


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
        self.path = exported_model(model_name, kind, backend.export_dir, backend.calibration_csv)
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
