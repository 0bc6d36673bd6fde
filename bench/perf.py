"""Speed and memory figures, each measured beside its baseline in the same run.

    python -m bench perf [--quick] [--sections embed,quality,cache,scale,upload] [--json OUT]
    python -m bench perf bertopic-scale N OUT.json [TIMEOUT]   # ours vs BERTopic at one size (background run)
    python -m bench gpu [--cpu-dry-run] [--quick] [--json OUT] # the GPU figures (bench/gpu.sh runs this)

Sections (``--quick`` shrinks every one so the whole run takes under ~3 minutes):

- ``embed``: texts/s of each embedding backend against plain ``SentenceTransformer.encode`` (fp32, batch 32) on
  the same texts (long reviews, ~120-character reviews, Banking77 queries), timed interleaved (A, B, A, B …), with
  mean / min cosine to the fp32 vectors.
- ``quality``: label recovery (mean best-theme F1 per gold label, ``bench.metrics``) of the themes of the
  product's analysis (``bench.systems.run_sae``) on fp32 vectors and on the fast backend's vectors, same seeds
  (Banking77 test, clothing sample).
- ``cache``: embedding stage on a re-uploaded file (warm cache) against the first upload (cold); duplicates.
- ``scale``: the product's analysis after embedding (:func:`worker.pipeline.analyze.analyze` given the embeddings
  as spans, four to a comment; sentiment preset: smoothing, SAE, themes over spans lifted to comments, the tree
  with its sub-theme SAE and names, themes.json) at 10k / 100k / 1M rows (spans), each in a child process: seconds of smoothing, SAE training and the themes stage (themes, tree, names, themes.json), peak RSS.
  Rows past the real ones are real embeddings plus Gaussian noise, renormalised, memory-mapped from disk; their
  texts are the texts of the rows they derive from.
- ``bertopic``: BERTopic ``fit_transform`` (its defaults, given the same embeddings) in a child process, bounded.
- ``upload``: peak RSS of a ``feedback-themes api`` process while a generated ~190 MB CSV is uploaded.

The GPU figures (:func:`gpu_benchmark`, ``python -m bench gpu``) run from ``bench/gpu.sh``; ``--cpu-dry-run`` runs
the same code on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
Log = Callable[[str], None]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else os.cpu_count(), "python": platform.python_version()}  # fmt: skip
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench_cache_dir() -> Path:
    return ROOT / "data" / "bench-cache"


# ---------------------------------------------------------------------------------------------- data
def _reviews() -> list[str]:
    import html

    import pandas as pd

    from bench.datasets import _need, data_dir

    df = pd.read_csv(_need(data_dir() / "womens_clothing_reviews" / "reviews.csv"))
    texts = df["Review Text"].dropna().astype(str).map(html.unescape)
    return texts[texts.str.strip() != ""].tolist()


def text_sets(quick: bool) -> dict[str, list[str]]:
    """Fixed-seed text sets: long reviews (≥400 characters, mean ~470), medium (100-140), Banking77 queries."""
    from bench.datasets import banking77

    reviews = np.array(_reviews(), dtype=object)
    lengths = np.array([len(t) for t in reviews])
    rng = np.random.default_rng(0)
    n = 96 if quick else 320
    long = reviews[rng.permutation(np.flatnonzero(lengths >= 400))[:n]].tolist()
    medium = reviews[rng.permutation(np.flatnonzero((lengths >= 100) & (lengths <= 140)))[: n * 2]].tolist()
    queries = banking77().texts
    short = [queries[i] for i in rng.permutation(len(queries))[: n * 3]]
    return {"long": long, "medium": medium, "short": short}


def _embed_cached(texts: list[str], backend: Any) -> np.ndarray:
    """Embeddings through the shared benchmark cache (``data/bench-cache``; the key includes the backend)."""
    from worker.pipeline.embed import embed_texts, unique_texts
    from worker.pipeline.embed_cache import EmbeddingCache

    unique, inverse = unique_texts(texts)
    cache = EmbeddingCache(bench_cache_dir())
    try:
        vectors, _ = embed_texts(unique, MODEL, device="cpu", batch_size=32, cache=cache, backend=backend)
    finally:
        cache.close()
    return vectors[inverse]


# ---------------------------------------------------------------------------------------------- embedding speed
def _variants(names: list[str]) -> dict[str, Any]:
    """The named backends, int8 calibrated on the packaged reviews as the product calibrates it."""
    from worker.analysis_options import CALIBRATION_CSV
    from worker.pipeline.embed_models import resolve_backend

    table = {
        "torch-fp32": ("torch", "none"),
        "openvino-fp32": ("openvino", "none"),
        "openvino-int8": ("openvino", "int8"),
        "onnx-fp32": ("onnx", "none"),
        "onnx-int8": ("onnx", "int8"),
    }
    return {n: resolve_backend(MODEL, "cpu", *table[n], calibration_csv=CALIBRATION_CSV) for n in names}


def section_embed(quick: bool, log: Log, variants: list[str] | None = None) -> dict[str, Any]:
    from worker.pipeline.embed import encode

    names = variants or (["torch-fp32", "openvino-fp32", "openvino-int8"] if quick
                         else ["torch-fp32", "openvino-fp32", "openvino-int8", "onnx-fp32", "onnx-int8"])  # fmt: skip
    backends = _variants(names)
    reps = 2 if quick else 3
    result: dict[str, Any] = {"baseline": "torch-fp32 = SentenceTransformer.encode, fp32, batch 32", "sets": {}}
    for set_name, texts in text_sets(quick).items():
        ref = encode(texts, MODEL, batch_size=32, backend=backends["torch-fp32"])
        cos = {}
        for name, be in backends.items():  # warm-up (and the export, once) + quality
            vec = encode(texts, MODEL, batch_size=32, backend=be)
            c = (vec * ref).sum(1)
            cos[name] = {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4)}
        times: dict[str, list[float]] = {n: [] for n in names}
        loads = []
        for _ in range(reps):  # interleaved
            for name, be in backends.items():
                start = time.perf_counter()
                encode(texts, MODEL, batch_size=32, backend=be)
                times[name].append(time.perf_counter() - start)
            loads.append(load())
        base = float(np.median(times["torch-fp32"]))
        rows = {}
        for name in names:
            t = float(np.median(times[name]))
            rows[name] = {"texts_per_s": round(len(texts) / t, 1), "ratio": round(base / t, 2), "cosine": cos[name]}
        mean_chars = round(float(np.mean([len(t) for t in texts])), 1)
        result["sets"][set_name] = {"n": len(texts), "mean_chars": mean_chars, "variants": rows, "loadavg": loads}
        log(f"embed {set_name} ({len(texts)} texts, {mean_chars} chars): "
            + ", ".join(f"{n} {r['texts_per_s']}/s ×{r['ratio']} cos {r['cosine']['mean']}" for n, r in rows.items())
            + f"; load {loads[-1]}")  # fmt: skip
    return result


# ---------------------------------------------------------------------------------------------- label recovery
def _recovery(X: np.ndarray, texts: list[str], labels: list[list[str]], seed: int) -> float:
    from bench.metrics import label_recovery
    from bench.systems import run_sae

    themes, _ = run_sae(X, seed)  # the vectors under test, one per comment (texts would be embedded afresh)
    return float(label_recovery(themes, labels)["mean_f1"])


def section_quality(quick: bool, log: Log, fast: str = "openvino-fp32", extra: list[str] | None = None) -> dict:
    from bench.datasets import banking77, clothing

    names = ["torch-fp32", fast] + [e for e in (extra or []) if e != fast]
    backends = _variants(names)
    seeds = [0] if quick else [0, 1, 2]
    out: dict[str, Any] = {"seeds": seeds, "sets": {}}
    for data in (banking77(), clothing(sample=1000 if quick else 4000)):
        vectors = {n: _embed_cached(data.texts, be) for n, be in backends.items()}
        row: dict[str, Any] = {"n": len(data.texts)}
        for name, X in vectors.items():
            scores = [_recovery(X, data.texts, data.labels, s) for s in seeds]
            c = (X * vectors["torch-fp32"]).sum(1)
            row[name] = {"label_recovery": round(float(np.mean(scores)), 4), "per_seed": [round(s, 4) for s in scores],
                         "cosine_mean": round(float(c.mean()), 4), "cosine_min": round(float(c.min()), 4)}  # fmt: skip
        for name in names[1:]:
            row[name]["delta"] = round(row[name]["label_recovery"] - row["torch-fp32"]["label_recovery"], 4)
        out["sets"][data.name] = row
        log(f"quality {data.name}: " + ", ".join(f"{n} F1 {row[n]['label_recovery']}" + (f" (Δ {row[n]['delta']:+})"
            if "delta" in row[n] else "") for n in names) + f"; load {load()}")  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------- cache
def section_cache(quick: bool, log: Log) -> dict[str, Any]:
    import pandas as pd

    from worker.pipeline.analyze import AnalysisOptions, embed_documents
    from worker.pipeline.embed_cache import EmbeddingCache

    reviews = _reviews()[: 300 if quick else 2000]
    docs = pd.DataFrame({"text": reviews + reviews[: len(reviews) // 2]})  # a third of the rows repeat a text
    with tempfile.TemporaryDirectory() as tmp:
        options = AnalysisOptions(device="cpu")
        start = time.perf_counter()
        first = embed_documents(docs, options, cache=EmbeddingCache(Path(tmp)))  # closed by embed_documents
        cold = time.perf_counter() - start
        start = time.perf_counter()
        second = embed_documents(docs, options, cache=EmbeddingCache(Path(tmp)))
        warm = time.perf_counter() - start
    same = bool(np.array_equal(first.vectors, second.vectors))
    result = {"rows": len(docs), "distinct": len(first.vectors), "encoded_first": first.n_encoded,
              "encoded_again": second.n_encoded, "cold_s": round(cold, 3), "warm_s": round(warm, 4),
              "ratio": round(cold / max(warm, 1e-9), 1), "identical": same, "loadavg": load()}  # fmt: skip
    log(f"cache: {len(docs)} rows ({len(first.vectors)} distinct, {first.n_encoded} encoded): cold {cold:.2f}s, "
        f"re-upload {warm:.3f}s (×{result['ratio']}, encoded {second.n_encoded}); load {load()}")  # fmt: skip
    return result


# ---------------------------------------------------------------------------------------------- scale
#: The scale rows are spans: this many make one comment.
SPANS_PER_COMMENT = 4

def _real_base(log: Log) -> tuple[np.ndarray, list[str]]:
    """Real embeddings with their texts: Banking77 test + clothing sample + airline tweets (fp32, cached)."""
    from bench.datasets import airline_sentiment, banking77, clothing
    from worker.pipeline.embed_models import resolve_backend

    texts: list[str] = []
    for data in (banking77(), clothing(), airline_sentiment()):
        texts += data.texts

    X = _embed_cached(texts, resolve_backend(MODEL, "cpu", "torch"))
    log(f"scale: {len(X)} real embeddings (Banking77 test, clothing sample, airline tweets)")
    return X, texts


def synthetic(base: np.ndarray, n: int, path: Path, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """``n`` rows into a float32 ``.npy`` memmap at ``path``: the real rows first, then real rows plus Gaussian
    noise (``noise`` per coordinate, ~0.39 of a unit vector's norm... renormalised). Returns the source row of each."""
    rng = np.random.default_rng(seed)
    source = np.concatenate([np.arange(min(n, len(base))), rng.integers(0, len(base), max(0, n - len(base)))])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, base.shape[1]))
    for start in range(0, n, 100_000):
        idx = source[start : start + 100_000]
        rows = base[idx].astype(np.float32)
        if start + len(idx) > len(base):
            fresh = np.arange(start, start + len(idx)) >= len(base)
            rows[fresh] += rng.normal(0, noise, (int(fresh.sum()), base.shape[1])).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        out[start : start + len(idx)] = rows
    out.flush()
    del out
    return source


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.perf ARGS`` and read its last JSON line (``{"error"}`` on failure)."""
    cmd = [sys.executable, "-m", "bench.perf", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (proc.stderr or proc.stdout)[-800:]}


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would carry the parent's peak over fork + exec)."""
    peak = _vm(os.getpid(), "VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageClock:
    """A ``progress`` callback for :func:`~worker.pipeline.analyze.analyze` that notes when each call came: the
    ``train`` stage starts with smoothing and calls again with 0.0 when the SAE starts fitting."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float]] = []

    def __call__(self, stage: str, fraction: float) -> None:
        self.calls.append((stage, fraction, time.perf_counter()))

    def smoothing_seconds(self) -> float | None:
        starts = [t for stage, f, t in self.calls if stage == "train" and f == 0.0]
        return starts[1] - starts[0] if len(starts) >= 2 else None


def spans_as_rows(texts: list[str], per_comment: int = SPANS_PER_COMMENT) -> tuple[list[str], Any]:
    """Rows as the spans of comments of ``per_comment`` rows each: the comments' texts (their spans joined by a
    space) and the :class:`~worker.pipeline.spans.Spans` (one per row, with its offsets)."""
    from worker.pipeline.spans import Spans

    n = len(texts)
    doc = np.arange(n) // per_comment
    start, comments, offset = np.zeros(n, dtype=np.int64), [], 0
    for row, text in enumerate(texts):
        if row % per_comment == 0:
            comments.append(text)
            offset = 0
        else:
            comments[-1] += " " + text
            offset += len(texts[row - 1]) + 1
        start[row] = offset
    end = start + np.array([len(t) for t in texts], dtype=np.int64)
    return comments, Spans(doc, np.arange(n) % per_comment, start, end, list(texts))


def run_ours(emb_path: str, texts_path: str) -> dict[str, Any]:
    """Child: the product's analysis of the memory-mapped embeddings as spans, :data:`SPANS_PER_COMMENT` per comment
    (texts per row from ``texts_path``; sentiment preset, so no model is loaded): smoothing, SAE, themes over spans
    lifted to comments, the tree with its sub-theme SAE and names, themes.json."""
    from bench.systems import unscored_documents
    from sae.trainer import warm_up
    from worker.pipeline.analyze import AnalysisOptions, analyze

    warm_up()  # as a worker process does when it starts (worker.tasks.warm_up_pool_process), before any job

    X = np.load(emb_path, mmap_mode="r")
    comments, spans = spans_as_rows(json.loads(Path(texts_path).read_text()))
    docs = unscored_documents(len(comments), comments)
    rss0 = _peak_rss_mb()
    clock = StageClock()
    start = time.perf_counter()
    analysis = analyze(docs, AnalysisOptions(device="cpu", seed=0), progress=clock, embeddings=X, spans=spans)
    done = time.perf_counter()
    sae, seconds, smooth_s = analysis.sae, analysis.seconds, clock.smoothing_seconds()
    train_s = seconds["train"] - (smooth_s or 0.0)
    return {"n": len(X), "comments": len(comments), "smooth_s": None if smooth_s is None else round(smooth_s, 2),
            "train_s": round(train_s, 2), "themes_s": round(seconds["themes"], 2),
            "n_sub_themes": len(analysis.sub_themes), "n_categories": len(analysis.categories),
            "total_s": round(done - start, 2), "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_before_mb": round(rss0, 1), "n_themes": len(analysis.themes),
            "n_latents": sae.n_latents_, "k": sae.k_,
            "epochs": sae.epochs_, "samples": int(sae.n_steps_ * sae.batch_size_), "fvu": round(sae.metrics_["fvu"], 4),
            "samples_per_s": round(sae.n_steps_ * sae.batch_size_ / max(train_s, 1e-9))}  # fmt: skip


def run_bertopic(emb_path: str, texts_path: str) -> dict[str, Any]:
    """Child: BERTopic with its defaults (UMAP, HDBSCAN, c-TF-IDF) given the same embeddings."""
    from bertopic import BERTopic

    X = np.asarray(np.load(emb_path, mmap_mode="r"))
    texts = json.loads(Path(texts_path).read_text())
    start = time.perf_counter()
    topics, _ = BERTopic(embedding_model=None).fit_transform(texts, embeddings=X)
    wall = time.perf_counter() - start
    return {"n": len(X), "total_s": round(wall, 2), "peak_rss_mb": round(_peak_rss_mb(), 1),
            "n_topics": int(len(set(topics)) - (1 if -1 in topics else 0))}  # fmt: skip


def prepare_scale(sizes: list[int], folder: Path, log: Log) -> dict[int, tuple[str, str]]:
    base, texts = _real_base(log)
    paths = {}
    for n in sizes:
        emb, txt = folder / f"emb-{n}.npy", folder / f"texts-{n}.json"
        source = synthetic(base, n, emb)
        txt.write_text(json.dumps([texts[i] for i in source]))
        paths[n] = (str(emb), str(txt))
    return paths


def section_scale(quick: bool, log: Log, folder: Path, bertopic_sizes: list[int], bertopic_timeout: float) -> dict:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    paths = prepare_scale(sizes, folder, log)
    out: dict[str, Any] = {"ours": {}, "bertopic": {}, "note": "rows past the ~22k real ones: real + N(0, 0.02²) "
                           "noise, renormalised; texts reused from the source rows"}  # fmt: skip
    for n in sizes:
        r = _child(["_ours", *paths[n]], timeout=1800)
        out["ours"][n] = r
        log(f"scale ours n={n}: {r}; load {load()}")
    if 1_000_000 in out["ours"] and 100_000 in out["ours"] and "total_s" in out["ours"][1_000_000]:
        out["ratio_1m_100k"] = round(out["ours"][1_000_000]["total_s"] / out["ours"][100_000]["total_s"], 2)
    for n in bertopic_sizes:
        if n not in paths:
            continue
        r = _child(["_bertopic", *paths[n]], timeout=bertopic_timeout)
        out["bertopic"][n] = r
        if "total_s" in r and "total_s" in out["ours"].get(n, {}):
            r["ours_over_bertopic_time"] = round(out["ours"][n]["total_s"] / r["total_s"], 3)
            r["ours_over_bertopic_rss"] = round(out["ours"][n]["peak_rss_mb"] / r["peak_rss_mb"], 3)
        log(f"scale bertopic n={n}: {r}; load {load()}")
    return out


# ---------------------------------------------------------------------------------------------- upload
def section_upload(log: Log, megabytes: int = 190) -> dict[str, Any]:
    """Peak RSS (VmHWM) of a ``feedback-themes api`` process while a ~``megabytes`` MB CSV is uploaded."""
    import socket
    import urllib.request

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FEEDBACK_THEMES_DATA_DIR": str(Path(tmp) / "data")}
        for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND"):
            env.pop(f"FEEDBACK_THEMES_{name}", None)
        exe = str(Path(sys.executable).with_name("feedback-themes"))
        subprocess.run([exe, "db", "upgrade"], env=env, check=True, capture_output=True)
        key = subprocess.run([exe, "keys", "create", "--tenant", "perf"], env=env, check=True, capture_output=True,
                             text=True).stdout  # fmt: skip
        key = next(w for w in key.split() if w.startswith("ft_"))
        csv = Path(tmp) / "big.csv"
        reviews = _reviews()
        with open(csv, "w", encoding="utf-8") as f:
            f.write("text,rating\n")
            i = 0
            while f.tell() < megabytes * 1_000_000:
                f.write('"' + reviews[i % len(reviews)].replace('"', '""') + f' #{i}",{i % 5 + 1}\n')
                i += 1
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        api = subprocess.Popen([exe, "api", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/projects", timeout=1)
                except urllib.error.HTTPError:
                    break
                except OSError:
                    time.sleep(0.2)
            before = _vm(api.pid, "VmRSS")
            start = time.perf_counter()
            curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"X-API-Key: {key}",
                                   "-F", f"file=@{csv}", "-F", "text_column=text", "-F", "rating_column=rating",
                                   f"http://127.0.0.1:{port}/v1/jobs"], capture_output=True, text=True)  # fmt: skip
            wall = time.perf_counter() - start
            peak = _vm(api.pid, "VmHWM")
        finally:
            api.terminate()
            api.wait(timeout=30)
        size = csv.stat().st_size
    result = {"csv_mb": round(size / 1e6, 1), "rows": i, "status": curl.stdout, "upload_s": round(wall, 2),
              "api_rss_before_mb": before, "api_peak_rss_mb": peak, "loadavg": load()}  # fmt: skip
    log(f"upload: {result}")
    return result


def _vm(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------- GPU
def _gpu_texts() -> list[str]:
    """The real clothing reviews when the data folder is there, else review-length texts made by joining ten of the
    packaged sample reviews at a time (the GPU machine has no data folder)."""
    try:
        return _reviews()
    except FileNotFoundError:
        from worker.analysis_options import CALIBRATION_CSV
        from worker.pipeline.embed_export import calibration_texts

        sample = calibration_texts(str(CALIBRATION_CSV))[:166]
        return [" ".join(sample[(i + j) % len(sample)] for j in range(10)) for i in range(len(sample))]


def gpu_benchmark(device: str = "cuda", quick: bool = False, log: Log = print) -> dict[str, Any]:
    """Embedding (fp16 on CUDA) and SAE training (bf16 autocast + TF32 on CUDA) throughput on ``device``.

    On the CPU (``--cpu-dry-run``) the sizes are tiny and the same code paths run; the GPU figures are checked
    against an fp32 CPU reference (cosine of embeddings, FVU of the SAE)."""
    import torch

    from sae import SparseAutoencoder
    from worker.pipeline.embed import encode
    from worker.pipeline.embed_models import resolve_backend

    cuda = device.startswith("cuda")
    reviews = _gpu_texts()
    n_texts = 20_000 if cuda and not quick else 64
    texts = [reviews[i % len(reviews)] for i in range(n_texts)]
    be = resolve_backend(MODEL, device, "torch")
    out: dict[str, Any] = {"device": device, "backend": be.tag or "torch-fp32"}
    encode(texts[:256], MODEL, device, batch_size=256, backend=be)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    vec = encode(texts, MODEL, device, batch_size=256 if cuda else 32, backend=be)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    ref = encode(texts[:64], MODEL, "cpu", batch_size=32, backend=resolve_backend(MODEL, "cpu", "torch"))
    cos = (vec[:64] * ref).sum(1)
    out["embed"] = {"texts": n_texts, "mean_chars": round(float(np.mean([len(t) for t in texts])), 1),
                    "texts_per_s": round(n_texts / wall, 1), "cosine_to_cpu_fp32_mean": round(float(cos.mean()), 4),
                    "cosine_to_cpu_fp32_min": round(float(cos.min()), 4)}  # fmt: skip
    log(f"gpu-bench embed: {out['embed']}")
    rng = np.random.default_rng(0)
    n_rows = 1_000_000 if cuda and not quick else 4_000
    base = vec.astype(np.float32)
    X = base[rng.integers(0, len(base), n_rows)] + rng.normal(0, 0.02, (n_rows, base.shape[1])).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    budget = 20_000_000 if cuda and not quick else 40_000
    kwargs = dict(n_latents=1024 if cuda else 64, k=8 if cuda else 4, batch_size=4096 if cuda else 256,
                  max_samples=budget, patience=None, random_state=0)  # fmt: skip
    sae = SparseAutoencoder(device=device, **kwargs)
    sae.fit(X[:8192])  # warm-up (kernels, autocast)
    sae = SparseAutoencoder(device=device, **kwargs)
    start = time.perf_counter()
    sae.fit(X)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    samples = sae.n_steps_ * sae.batch_size_
    out["sae"] = {"rows": n_rows, "n_latents": sae.n_latents_, "k": sae.k_, "samples": int(samples),
                  "wall_s": round(wall, 2), "samples_per_s": round(samples / wall), "fvu": round(sae.metrics_["fvu"], 4)}
    if not cuda or quick:  # agreement check: the same fit in fp32 on the CPU
        cpu = SparseAutoencoder(device="cpu", **kwargs).fit(X)
        out["sae"]["fvu_cpu_fp32"] = round(cpu.metrics_["fvu"], 4)
    log(f"gpu-bench sae: {out['sae']}")
    return out


# ---------------------------------------------------------------------------------------------- driver
def run_perf(quick: bool = False, sections: list[str] | None = None, log: Log = print,
             bertopic_timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
    sections = sections or ["embed", "quality", "cache", "scale", "upload"]
    result: dict[str, Any] = {"machine": machine(), "quick": quick}
    log(f"machine: {result['machine']}")
    if "embed" in sections:
        result["embed"] = section_embed(quick, log)
    if "quality" in sections:
        result["quality"] = section_quality(quick, log, extra=None if quick else ["openvino-int8"])
    if "cache" in sections:
        result["cache"] = section_cache(quick, log)
    if "scale" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            sizes = [] if quick else [10_000]
            result["scale"] = section_scale(quick, log, Path(tmp), sizes, bertopic_timeout or 900)
    if "upload" in sections and not quick:
        result["upload"] = section_upload(log)
    result["loadavg_end"] = load()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("_ours", "_bertopic"):  # a child process of the scale section
        fn = run_ours if argv[0] == "_ours" else run_bertopic
        print(json.dumps(fn(argv[1], argv[2])))
        return 0
    if argv and argv[0] == "bertopic-scale":  # background: ours vs BERTopic at one size, JSON to argv[2]
        if len(argv) < 3:
            print("usage: python -m bench perf bertopic-scale N OUT.json [TIMEOUT]", file=sys.stderr)
            return 2
        n, target = int(argv[1]), Path(argv[2])
        with tempfile.TemporaryDirectory() as tmp:
            paths = prepare_scale([n], Path(tmp), print)
            ours = _child(["_ours", *paths[n]], timeout=3600)
            theirs = _child(["_bertopic", *paths[n]], timeout=float(argv[3]) if len(argv) > 3 else 3600)
        record = {"n": n, "ours": ours, "bertopic": theirs, "machine": machine(), "loadavg_end": load()}
        target.write_text(json.dumps(record, indent=1))
        print(json.dumps(record))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: under ~3 minutes")
    parser.add_argument("--sections", default="", help="comma-separated: embed, quality, cache, scale, upload "
                        "(default all)")  # fmt: skip
    parser.add_argument("--json", dest="json_out", type=Path, help="write all figures as JSON here")
    args = parser.parse_args(argv)
    result = run_perf(quick=args.quick, sections=[s.strip() for s in args.sections.split(",") if s.strip()] or None,
                      log=lambda line: print(line, flush=True))  # fmt: skip
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1, default=float))
    return 0


def gpu_main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench gpu``: :func:`gpu_benchmark` on CUDA (or, dry run, on the CPU)."""
    description = "The GPU figures (what bench/gpu.sh runs). " + (gpu_benchmark.__doc__ or "")
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-dry-run", action="store_true", help="the same code paths on the CPU, tiny sizes "
                        "(also with FEEDBACK_THEMES_CPU_DRY_RUN=1)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes on CUDA too (with the CPU agreement check)")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    dry = args.cpu_dry_run or os.environ.get("FEEDBACK_THEMES_CPU_DRY_RUN") == "1"
    result = gpu_benchmark("cpu" if dry else "cuda", quick=args.quick)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
