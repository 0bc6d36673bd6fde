"""The analysis options a deployment's settings stand for: the one bridge from :mod:`service.settings` to
:class:`worker.pipeline.analyze.AnalysisOptions` (the pipeline itself never reads settings)."""

from __future__ import annotations

from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from service.settings import Settings
from worker.pipeline.analyze import AnalysisOptions
from worker.pipeline.smooth import SmoothOptions
from worker.pipeline.spans import SpanOptions
from worker.pipeline.tree import TreeOptions

#: Packaged reviews that calibrate static int8 quantization (``embedding_quantize=int8`` with OpenVINO).
CALIBRATION_CSV = Path(str(files("service") / "sample" / "shop_feedback.csv"))


def from_settings(settings: Settings, **overrides: Any) -> AnalysisOptions:
    """Options from the settings; ``overrides`` (any :class:`AnalysisOptions` field, ``None`` values ignored) win."""
    options = AnalysisOptions(
        model=settings.embedding_model,
        device=settings.device,
        seed=settings.seed,
        batch_size=settings.embedding_batch_size,
        backend=settings.embedding_backend,
        quantize=settings.embedding_quantize,
        max_seq_length=settings.embedding_max_seq_length,
        export_dir=settings.cache_dir / "models",
        calibration_csv=CALIBRATION_CSV,
        spans=SpanOptions(enabled=settings.spans),
        smoothing=SmoothOptions(n_neighbors=settings.smoothing_neighbors, weight=settings.smoothing_weight),
        tree=TreeOptions(sub_themes=settings.theme_levels),
    )
    return replace(options, **{k: v for k, v in overrides.items() if v is not None})
