"""``feedback-themes bench``: theme-quality and sentiment benchmarks on labelled feedback (benchmark-only)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on labelled feedback (needs ../shared/data or a CSV).")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _load(dataset: Optional[str], csv: Optional[Path], text_column: str, label_column: Optional[str],
          label_sep: Optional[str]):  # fmt: skip
    from worker.benchmarks import datasets

    if (dataset is None) == (csv is None):
        _fail("give exactly one of --dataset or --csv")
    try:
        if dataset:
            return datasets.load(dataset)
        if not label_column:
            _fail("--csv needs --label-column")
        return datasets.from_csv(csv, text_column, label_column, label_sep)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@bench_app.command()
def quality(
    dataset: Annotated[Optional[str], typer.Option(help="banking77, airline, semeval or clothing (../shared/data).")] = None,
    csv: Annotated[Optional[Path], typer.Option(help="A labelled CSV instead of --dataset.")] = None,
    text_column: Annotated[str, typer.Option(help="Text column of --csv.")] = "text",
    label_column: Annotated[Optional[str], typer.Option(help="Gold label column of --csv.")] = None,
    label_sep: Annotated[Optional[str], typer.Option(help="Separator of several labels in one cell.")] = None,
    systems: Annotated[str, typer.Option(help="Comma-separated: sae, kmeans[:k=N], bertopic.")] = "sae,kmeans,bertopic",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (stability needs two or more).")] = "0,1,2",
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write all figures as JSON here.")] = None,
) -> None:
    """Label recovery, theme precision, theme count, outliers, micro-F1, stability and time per system."""
    from worker.benchmarks import datasets
    from worker.benchmarks.quality import markdown_table, run_quality

    data = _load(dataset, csv, text_column, label_column, label_sep)
    start = time.perf_counter()
    X = datasets.embed(data.texts, cache_dir)
    console.print(f"{data.note}; embedded in {time.perf_counter() - start:.1f}s", highlight=False)
    result = run_quality(data, X, [s.strip() for s in systems.split(",") if s.strip()],
                         [int(s) for s in seeds.split(",") if s.strip()], log=err_console.print)  # fmt: skip
    console.print(markdown_table(result), highlight=False, soft_wrap=True)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=float))


@bench_app.command()
def sentiment(
    dataset: Annotated[str, typer.Option(help="airline, clothing, semeval, or held out: laptops, restaurants16, "
                                         "hotels.")] = "airline",
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the figures as JSON here.")] = None,
) -> None:
    """Per-comment 3-class sentiment accuracy of the offline scorers against the set's gold sentiment."""
    from worker.benchmarks.sentiment_eval import evaluate_dataset

    try:
        result = evaluate_dataset(dataset, cache_dir)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for name, value in result["accuracy"].items():
        console.print(f"{dataset} {name}: {value:.3f}", highlight=False)
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, default=float))


@bench_app.command()
def perf(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: under ~3 minutes.")] = False,
    sections: Annotated[str, typer.Option(help="Comma-separated: embed, quality, cache, scale, upload.")] = "",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write all figures as JSON here.")] = None,
) -> None:
    """Speed and memory, each figure beside its baseline with the ratio (worker/benchmarks/perf.py)."""
    from worker.benchmarks.perf import run_perf

    result = run_perf(quick=quick, sections=[s.strip() for s in sections.split(",") if s.strip()] or None,
                      log=lambda line: console.print(line, highlight=False, soft_wrap=True))  # fmt: skip
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=float))
