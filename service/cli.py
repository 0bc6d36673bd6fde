"""The ``feedback-themes`` command line. Heavy modules (torch, the pipeline) are imported inside commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Find the themes in customer feedback.")
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command("analyze")
def analyze_command(
    file: Annotated[Path, typer.Argument(help="CSV file of feedback.")],
    text_column: Annotated[str, typer.Option(help="Column with the comment text.")] = "text",
    rating_column: Annotated[Optional[str], typer.Option(help="Column with a numeric rating.")] = None,
    date_column: Annotated[Optional[str], typer.Option(help="Column with a date.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="Column with a document id.")] = None,
    keep_columns: Annotated[Optional[str], typer.Option(help="Comma-separated columns to keep as metadata (default: "
                                                        "every other column; 'none': none); written to "
                                                        "documents.csv.")] = None,  # fmt: skip
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Random seed: same file and seed give the same themes.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    model: Annotated[Optional[str], typer.Option(help="sentence-transformers model name or path.")] = None,
    n_latents: Annotated[Optional[int], typer.Option(help="SAE dictionary size (default from corpus size).")] = None,
    k: Annotated[Optional[int], typer.Option(help="SAE active latents per comment (default from corpus size).")] = None,
    top: Annotated[int, typer.Option(help="Themes to print in the table.")] = 20,
    tree_top: Annotated[int, typer.Option(help="Themes to print under each category (and sub-themes under each theme)"
                                               " in the tree; the rest are counted.")] = 3,  # fmt: skip
) -> None:
    """Analyse a CSV in this process and write themes.json, themes.csv, theme_tree.csv, document_themes.csv,
    document_nodes.csv, span_themes.csv and documents.csv."""
    from service.settings import get_settings
    from worker.pipeline.ingest import ColumnMap, IngestError, read_csv, require_distinct_texts

    settings = get_settings()
    if not file.is_file():
        fail(f"no such file: {file}")
    keep = None if keep_columns is None else [] if keep_columns.strip().lower() == "none" else \
        [c.strip() for c in keep_columns.split(",") if c.strip()]  # fmt: skip
    columns = ColumnMap(text=text_column, id=id_column, rating=rating_column, date=date_column, keep=keep)
    try:
        ingested = read_csv(file, columns)
    except IngestError as exc:
        fail(f"{file}: {exc}")
    if ingested.documents["text"].nunique() < 2:
        fail(f"{file}: themes need at least 2 different comments; the file has {ingested.documents['text'].nunique()}")
    try:
        require_distinct_texts(ingested)  # also once handles, links and masks are taken out
    except IngestError as exc:
        fail(f"{file}: {exc}")
    console.print(
        f"Read {ingested.counts['documents']} comments from {file} "
        f"({ingested.counts['empty_dropped']} empty dropped, {ingested.counts['duplicate_texts']} duplicate texts)."
    )
    from worker.analysis_options import from_settings
    from worker.pipeline.analyze import STAGES, analyze
    from worker.pipeline.embed_cache import EmbeddingCache
    from worker.pipeline.metadata import describe_columns
    from worker.pipeline.output import write_output_files

    options = from_settings(settings, model=model, device=device, seed=seed, n_latents=n_latents, k=k)
    with _stage_bars(("ingest", *STAGES, "files")) as progress:
        progress("ingest", 1.0)
        result = analyze(ingested.documents, options, progress=progress, cache=EmbeddingCache(settings.cache_dir),
                         counts=ingested.counts)  # fmt: skip
        result.document["metadata"]["columns"] = describe_columns(ingested.metadata)
        paths = write_output_files(out, result.document, result.nodes, result.documents, result.spans,
                                   ingested.metadata)  # fmt: skip
        progress("files", 1.0)
    print_themes(result.document, top)
    print_tree(result.document, tree_top)
    console.print(f"Wrote {', '.join(str(p) for p in paths)}", soft_wrap=True, highlight=False)  # paths unbroken


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
    """A readable table of the largest themes by name (on a wide terminal with their keywords and an example)."""
    meta = document["metadata"]
    sae = meta["sae"]
    # The fixed columns take their width; keywords and an example share what is left of a wide enough terminal.
    extra = [name for name, width in (("keywords", 100), ("example", 130)) if console.width >= width]
    table = Table(title=f"{meta['n_themes']} themes in {meta['n_documents']} comments "
                        f"(SAE {sae['n_latents']} latents, K={sae['k']}, FVU {sae['fvu']:.3f})",
                  expand=bool(extra), width=min(console.width, 160) if extra else None)  # fmt: skip
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("theme", overflow="fold", max_width=32)
    for name in ("size", "share", "mood", "rating"):
        table.add_column(name, justify="right", no_wrap=True)
    for name in extra:
        table.add_column(name, ratio=1 if name == "keywords" else 2, overflow="ellipsis", no_wrap=True,
                         style="dim" if name == "keywords" else "")  # fmt: skip
    for theme in document["themes"][:top]:
        rating = theme["rating"]
        cells = {"keywords": ", ".join(theme["keywords"][:4]),
                 "example": theme["examples"][0]["text"] if theme["examples"] else ""}  # fmt: skip
        table.add_row(str(theme["id"]), Text(node_name(theme)), str(theme["size"]), f"{theme['share']:.1%}",
                      mood(theme["sentiment"]["mean"]), "" if rating is None else f"{rating['mean']:.2f}",
                      *(Text(cells[name]) for name in extra))  # fmt: skip
    console.print(table)


# At most this many categories are printed: the category level of the tree fits on one screen.
MAX_CATEGORIES = 15


def print_tree(document: dict, top: int) -> None:
    """The theme tree: each category (name, size, share, mood, number of themes) with its ``top`` largest themes, each
    with its ``top`` largest sub-themes; what is left out is counted in a "+N more" line (``top`` 0: categories only).
    """
    categories = document.get("categories") or []
    themes, sub_themes = document.get("themes") or [], document.get("sub_themes") or []
    nodes = {n["id"]: n for n in (*categories, *themes, *sub_themes)}
    tree = Tree(Text(f"{len(categories)} categories, {len(themes)} themes, {len(sub_themes)} sub-themes in "
                     f"{document['metadata']['n_documents']} comments", style="bold"), guide_style="dim")  # fmt: skip
    for category in categories[:MAX_CATEGORIES]:
        children = _children(category, nodes)
        branch = tree.add(node_text(category, share=True, n_themes=len(children)))
        for theme in children[:top]:
            twig = branch.add(node_text(theme))
            grandchildren = _children(theme, nodes)
            for sub_theme in grandchildren[:top]:
                twig.add(node_text(sub_theme))
            _more(twig, len(grandchildren) - top, "sub-theme")
        if top > 0:
            _more(branch, len(children) - top, "theme")
    _more(tree, len(categories) - MAX_CATEGORIES, "category")
    console.print(tree)


def _children(node: dict, nodes: dict[int, dict]) -> list[dict]:
    """A node's children, largest first."""
    return sorted((nodes[i] for i in node.get("children") or [] if i in nodes), key=lambda n: (-n["size"], n["id"]))


def _more(branch: Tree, left_out: int, noun: str) -> None:
    """A dim "+N more …" line under ``branch`` when ``left_out`` children were not printed."""
    if left_out > 0:
        plural = {"category": "categories"}.get(noun, noun + "s") if left_out > 1 else noun
        branch.add(Text(f"+{left_out} more {plural}", style="dim"))


def node_name(node: dict) -> str:
    """A node's name (records written before names existed: its label)."""
    return node.get("name") or node.get("label") or f"theme {node['id']}"


def node_text(node: dict, share: bool = False, n_themes: int | None = None) -> Text:
    """One line of the tree: the name (as text, never markup), size, optionally share, mean sentiment and the number
    of themes (a category's)."""
    facts = [f"{node['size']} comments"] + ([f"{node['share']:.1%}"] if share else [])
    line = Text.assemble((node_name(node), "bold" if share else ""), "  ", (" · ".join(facts) + " · mood ", "dim"),
                         mood(node["sentiment"]["mean"]), no_wrap=True, overflow="ellipsis")  # one line each
    if n_themes is not None:
        line.append(f" · {n_themes} theme{'' if n_themes == 1 else 's'}", style="dim")
    return line


def mood(mean: float) -> Text:
    """A mean sentiment, signed, red when negative and green when positive."""
    return Text(f"{mean:+.2f}", style="red" if mean <= -0.05 else "green" if mean >= 0.05 else "")


keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

from service.cli_reporting import reporting_app  # noqa: E402

app.add_typer(reporting_app, name="reporting")


@keys_app.command("create")
def keys_create(tenant: Annotated[str, typer.Option(help="Tenant (company) the key belongs to; created if new.")]) -> None:
    """Create an API key for a tenant and print it once (only its hash is stored)."""
    from service.keys import create_key
    from service.storage.session import session_scope, upgrade_database

    tenant = tenant.strip()
    if not tenant or len(tenant) > 200:
        fail("--tenant must be 1 to 200 characters")
    upgrade_database()
    with session_scope() as session:
        key, _ = create_key(session, tenant)
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys: shown prefix, tenant, created, revoked (the keys themselves are never stored)."""
    from service.keys import list_keys
    from service.storage.session import session_scope, upgrade_database

    upgrade_database()
    with session_scope() as session:
        for prefix, tenant, created, revoked in list_keys(session):
            state = f"revoked {revoked:%Y-%m-%dT%H:%M:%SZ}" if revoked else "active"
            typer.echo(f"{prefix}\t{tenant}\t{created:%Y-%m-%dT%H:%M:%SZ}\t{state}")


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key, or its first characters as `keys list` shows them.")],
) -> None:
    """Revoke a key. Running API processes stop accepting it within FEEDBACK_THEMES_API_KEY_CACHE_SECONDS."""
    from service.keys import PREFIX, revoke_key
    from service.storage.session import session_scope, upgrade_database

    prefix = prefix.strip()[:10]
    if len(prefix) < len(PREFIX) + 4 or not prefix.startswith(PREFIX):
        fail(f"give a key or its prefix as `keys list` shows it ({PREFIX} and at least 4 more characters)")
    upgrade_database()
    with session_scope() as session:
        matched = revoke_key(session, prefix)
    if matched == 0:
        fail(f"no active key starts with {prefix!r}")
    if matched > 1:
        fail(f"several active keys start with {prefix!r}; give more of the key")
    typer.echo(f"revoked the key starting with {prefix!r}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the configured database."""
    from service.storage.session import upgrade_database

    upgrade_database()
    console.print("database schema is up to date")


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log each request (uvicorn's access log, on stderr).")] = True,
) -> None:
    """Run the REST API (production: point FEEDBACK_THEMES_BROKER_URL and _DATABASE_URL at Redis and PostgreSQL)."""
    import uvicorn

    from service.storage.session import upgrade_database

    refuse_example_secrets()
    upgrade_database()
    uvicorn.run("service.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=True, log_level="info", access_log=access_log)  # fmt: skip


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: cpu, gpu.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, solo or threads.")] = "prefork",
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
    metrics_port: Annotated[Optional[int], typer.Option(help="Serve Prometheus metrics on this port.")] = None,
    parent_pid: Annotated[Optional[int], typer.Option(hidden=True, help="Exit when this process is gone.")] = None,
) -> None:
    """Run a Celery worker on the given queues (and the watchdog that re-queues stalled jobs)."""
    import os

    from service.settings import get_settings
    from service.storage.session import upgrade_database
    from worker.celery_app import CPU_QUEUE, GPU_QUEUE, create_celery

    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names or any(q not in (CPU_QUEUE, GPU_QUEUE) for q in names):
        fail(f"--queues must name cpu and/or gpu, got {queues!r}")
    refuse_example_secrets()
    upgrade_database()
    from service.supervise import exit_with_parent, lower_priority

    lower_priority(get_settings().worker_nice)
    if parent_pid:
        exit_with_parent(parent_pid)
    if metrics_port:
        from service.metrics import serve_worker_metrics

        serve_worker_metrics(metrics_port)
    celery = create_celery()
    celery.worker_main(["worker", f"--queues={','.join(names)}", f"--concurrency={concurrency}", f"--pool={pool}",
                        f"--loglevel={loglevel}", f"--hostname={'-'.join(names)}-{os.getpid()}@%h"])  # fmt: skip


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """The whole service on this machine: API plus an embedded worker, filesystem broker, SQLite. No Redis."""
    import os
    import signal
    import sys

    import uvicorn

    from service.keys import create_key
    from service.settings import get_settings
    from service.storage.session import session_scope, upgrade_database

    settings = get_settings()
    if not settings.embedded_broker:
        console.print("[yellow]note:[/] a broker URL is set; `serve` still runs an embedded worker against it")
    upgrade_database()
    first_key = None
    with session_scope() as session:
        from sqlalchemy import func, select

        from service.storage.models import ApiKey

        if not session.scalar(select(func.count()).select_from(ApiKey)):
            first_key, _ = create_key(session, "local")
    worker_cmd = [sys.executable, "-m", "service.cli", "worker", "--queues", "cpu,gpu", "--concurrency", "1",
                  "--parent-pid", str(os.getpid())]  # fmt: skip
    # Its own session: a Ctrl-C or a SIGTERM to this process group reaches only this process, which then stops the
    # worker with one SIGTERM (a signal to the worker's pool processes as well can hang Celery's shutdown). A worker
    # that dies is started again; one whose `serve` dies (even by SIGKILL) exits by itself (--parent-pid).
    from service.supervise import Supervisor

    child = Supervisor(worker_cmd, env=os.environ.copy(), say=lambda text: err_console.print(text)).start()
    base = f"http://{host}:{port}"
    say = lambda text: console.print(text, soft_wrap=True, highlight=False)  # noqa: E731 - keys and URLs unbroken
    say(f"\n[bold]feedback-themes[/] is starting on {base}  (API docs: {base}/docs)")
    say(f"Data folder: {settings.data_dir.resolve()}  (SQLite, uploads, models, broker queue)")
    if first_key:
        say(f"Your API key (tenant 'local', shown once): [bold]{first_key}[/]")
    say("More keys: feedback-themes keys create --tenant NAME")
    say(f"Upload: curl -H 'X-API-Key: KEY' -F file=@reviews.csv -F text_column=text {base}/v1/jobs\n")
    # uvicorn re-raises the SIGTERM it shut down on; with the default handler that would end this process at once and
    # orphan the worker. As an exception it unwinds through the ``finally`` below, which stops the worker.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        uvicorn.run("service.api.app:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        child.stop(timeout=20)


def refuse_example_secrets() -> None:
    """Refuse to start with a password copied from ``deploy/.env.example``."""
    from service.secrets_check import example_secrets
    from service.settings import get_settings

    names = example_secrets(get_settings())
    if names:
        fail(f"{', '.join(names)} still hold the example password 'change-me': set a real one")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Console entry point: an unexpected error prints one line (set FEEDBACK_THEMES_DEBUG=1 for the traceback)."""
    import os

    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("FEEDBACK_THEMES_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
