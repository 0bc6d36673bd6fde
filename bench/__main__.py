"""``python -m bench <command> [options]``: the one entry point of the benchmarks.

Each command runs one benchmark module's ``main(argv)`` with the options that follow it
(``python -m bench <command> --help`` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
from collections.abc import Sequence
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    function: str
    summary: str


COMMANDS: dict[str, Command] = {
    "quality": Command("bench.quality", "main", "theme quality on a labelled set: label recovery, theme precision, "
                       "theme count, outliers, micro-F1, stability and time per system (sae, kmeans, bertopic)"),
    "tree": Command("bench.tree_eval", "main", "the theme tree on labelled sets: category recovery against k-means "
                    "with as many clusters, category and theme stability across seeds, junk names, name fidelity"),
    "sentiment": Command("bench.sentiment_eval", "main", "per-comment 3-class sentiment accuracy of the offline "
                         "scorers against a set's gold sentiment"),
    "theme-sentiment": Command("bench.theme_sentiment", "main", "per-theme sentiment against SemEval 2014 gold "
                               "category polarity (Spearman over themes)"),
    "span-sentiment": Command("bench.span_sentiment", "main", "per (review, entity) sentiment of the themes on "
                              "SemEval 2016 whole reviews against whole-review VADER, per span weight"),
    "brand-labels": Command("bench.brand_labels", "main", "the largest themes of all airline tweets: labels that "
                            "name an airline or only thank one"),
    "incremental": Command("bench.incremental", "main", "what a second upload (SAE update) does to a project's "
                           "themes: ids kept, label F1 against a fresh fit"),
    "perf": Command("bench.perf", "main", "speed and memory (embedding backends, quality per backend, embedding "
                    "cache, scale to 1M rows, upload RSS), each beside its baseline"),
    "gpu": Command("bench.perf", "gpu_main", "embedding and SAE training throughput on CUDA, checked against "
                   "float32 on the CPU (--cpu-dry-run: the same code on the CPU)"),
    "core": Command("bench.core_pipeline", "main", "`feedback-themes analyze` on real reviews: wall time, themes, "
                    "FVU, fields filled, byte-identical second run"),
    "faults": Command("bench.faults", "main", "jobs under killed workers, pools, Redis, PostgreSQL connections, "
                      "API and serve: every job succeeds exactly once with every comment"),
    "fuzz": Command("bench.fuzz", "main", "schemathesis cases from the API's OpenAPI document on SQLite and "
                    "PostgreSQL: answers by status class, no 5xx"),
    "load": Command("bench.load", "main", "concurrent uploads and job polling while both workers are busy: "
                    "latency percentiles, errors"),
    "alerts": Command("bench.alerts_eval", "main", "a known subject planted at 1 %, 2 % and 5 % of one day's upload "
                      "of airline tweets: does an alert name it; false alerts per upload without one"),
    "segments": Command("bench.segments_eval", "main", "segment filters: theme list, tree and stats latency on a "
                        "100k-comment PostgreSQL project; Dresses against the other clothing reviews (compare)"),
}


def parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    table = "\n".join(textwrap.fill(c.summary, 100, initial_indent=f"  {name:<{width}}  ",
                                   subsequent_indent=" " * (width + 4)) for name, c in COMMANDS.items())  # fmt: skip
    p = argparse.ArgumentParser(
        prog="python -m bench",
        usage="python -m bench [-h] COMMAND [options]",
        description="Benchmarks of feedback-themes (research code; not part of the product).",
        epilog=f"commands:\n{table}\n\nOptions of a command: python -m bench COMMAND --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    p.add_argument("options", nargs="*", metavar="options", help="the command's options")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        parser().print_help(sys.stderr)
        return 2
    # Only the command is parsed here: everything after it belongs to the command (its --help included).
    name = parser().parse_args(argv[:1]).command
    command = COMMANDS[name]
    sys.argv = [f"python -m bench {name}", *argv[1:]]  # the command's usage line and echoed command
    run = getattr(importlib.import_module(command.module), command.function)
    return int(run(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
