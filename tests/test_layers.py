"""The layers' one-way rule (docs/architecture.md): import-linter's contracts in pyproject.toml, and what a worker
process actually loads (the API's side: tests/test_api.py, test_api_process_never_imports_torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded_modules(statement: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"import sys; {statement}; print(','.join(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_contracts_hold():
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_the_celery_tasks_load_no_web_framework():
    assert loaded_modules("import worker.tasks", ("fastapi", "starlette", "typer", "torch")) == []

