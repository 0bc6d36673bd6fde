"""The ``feedback-themes`` command line. Heavy modules (torch, the pipeline) are imported inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Find the themes in customer feedback.")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def analyze(
    file: Annotated[Path, typer.Argument(help="CSV file of feedback.")],
    text_column: Annotated[str, typer.Option(help="Column with the comment text.")] = "text",
    rating_column: Annotated[Optional[str], typer.Option(help="Column with a numeric rating.")] = None,
    date_column: Annotated[Optional[str], typer.Option(help="Column with a date.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column with a document id.")] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Random seed: same file and seed give the same themes.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="sentence-transformers model name or path.")] = None,
    n_latents: Annotated[Optional[int], typer.Option(help="SAE dictionary size (default from corpus size).")] = None,
    k: Annotated[Optional[int], typer.Option(help="SAE active latents per comment (default from corpus size).")] = None,
    top: Annotated[int, typer.Option(help="Themes to print.")] = 20,
) -> None:
    """Analyse a CSV in this process and write themes.json, themes.csv, document_themes.csv, documents.csv."""
    from service.settings import get_settings
    from worker.stages.ingest import ColumnMap, IngestError, read_csv

    settings = get_settings()
    if not file.is_file():
        fail(f"no such file: {file}")
    columns = ColumnMap(text=text_column, id=id_column, rating=rating_column, date=date_column)
    try:
        ingested = read_csv(file, columns)
    except IngestError as exc:
        fail(f"{file}: {exc}")
    console.print(
        f"Read {ingested.counts['documents']} comments from {file} "
        f"({ingested.counts['empty_dropped']} empty dropped, {ingested.counts['duplicate_texts']} duplicate texts)."
    )
    from worker.pipeline import STAGES, AnalysisOptions, analyze as run_analysis
    from worker.stages.report import write_report

    options = AnalysisOptions(
        model=model or settings.embedding_model, device=device, seed=seed, n_latents=n_latents, k=k,
        batch_size=settings.embedding_batch_size, cache_dir=settings.cache_dir,
    )  # fmt: skip
    with _stage_bars(STAGES) as progress:
        result = run_analysis(ingested, options, progress=progress)
        paths = write_report(out, result.document, result.themes, result.documents)
        progress("report", 1.0)
    print_themes(result.document, top)
    console.print(f"Wrote {', '.join(str(p) for p in paths)}")


class _stage_bars:
    """A rich progress bar per pipeline stage, driven by ``progress(stage, fraction)`` calls."""

    def __init__(self, stages: tuple[str, ...]) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn("{task.description:<10}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                             TimeElapsedColumn(), console=err_console)  # fmt: skip
        self.tasks = {s: self.bars.add_task(s, total=1.0) for s in stages}

    def __enter__(self) -> "_stage_bars":
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def __call__(self, stage: str, fraction: float) -> None:
        self.bars.update(self.tasks[stage], completed=min(1.0, max(0.0, fraction)))


def print_themes(document: dict, top: int) -> None:
    """A readable table of the largest themes."""
    meta = document["metadata"]
    sae = meta["sae"]
    table = Table(title=f"{meta['n_themes']} themes in {meta['n_documents']} comments "
                        f"(SAE {sae['n_latents']} latents, K={sae['k']}, FVU {sae['fvu']:.3f})")  # fmt: skip
    for name, justify in (("id", "right"), ("theme", "left"), ("size", "right"), ("share", "right"),
                          ("sentiment", "right"), ("rating", "right"), ("example", "left")):  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold" if name == "theme" else "ellipsis",
                         no_wrap=name == "example", max_width=60 if name == "example" else None)  # fmt: skip
    for theme in document["themes"][:top]:
        rating = theme["rating"]
        table.add_row(
            str(theme["id"]), theme["label"], str(theme["size"]), f"{theme['share']:.1%}",
            f"{theme['sentiment']['mean']:+.2f}", "" if rating is None else f"{rating['mean']:.2f}",
            theme["examples"][0]["text"] if theme["examples"] else "",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    app()
