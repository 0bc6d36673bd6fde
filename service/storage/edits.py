"""A project's edits of its theme tree's nodes (any level): rename, hide/show, merge within a level, unmerge (kept
for the project, across jobs: node ids are stable)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.storage.derived import refresh_derived
from service.storage.errors import Conflict, InvalidInput
from service.storage.models import LEVEL_CATEGORY, LEVEL_SUB_THEME, LEVEL_THEME, Job, ThemeEdit
from service.storage.theme_view import job_view, project_edits
from service.storage.themes import theme_detail, theme_row

LEVEL_NAMES = {LEVEL_CATEGORY: "a category", LEVEL_THEME: "a theme", LEVEL_SUB_THEME: "a sub-theme"}


def _edit(session: Session, project_id: str, theme_id: int) -> ThemeEdit:
    edit = session.get(ThemeEdit, (project_id, theme_id))
    if edit is None:
        edit = ThemeEdit(project_id=project_id, theme_id=theme_id, hidden=False)
        session.add(edit)
    return edit


def edit_theme(session: Session, job: Job, theme_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Rename (``name`` or its older spelling ``label``; empty → the generated name again) and/or hide/show
    (``hidden``; a hidden node hides its descendants) a node of any level."""
    theme_detail(session, job, theme_id)  # NotFound when absent or merged away
    names = {(changes[k] or "").strip() for k in ("name", "label") if k in changes}
    if len(names) > 1:
        raise InvalidInput("name and label are the same thing: send one of them", "name-and-label-differ")
    edit = _edit(session, job.project_id, theme_id)
    if names:
        edit.label = names.pop() or None
    if "hidden" in changes and changes["hidden"] is not None:
        edit.hidden = bool(changes["hidden"])
    session.flush()
    return theme_detail(session, job, theme_id)


def merge_themes(session: Session, job: Job, target: int, sources: list[int]) -> dict[str, Any]:
    """Show ``sources`` as part of ``target`` from now on (their ids stay theirs; other nodes are untouched). Nodes
    of different levels cannot be merged."""
    view = job_view(session, job)
    levels = {theme: theme_row(session, job.id, theme).level for theme in (target, *sources)}
    if across := sorted(t for t in sources if levels[t] != levels[target]):
        raise InvalidInput(f"theme {target} is of level {levels[target]} ({LEVEL_NAMES.get(levels[target])}) but "
                           f"{', '.join(f'{t} is of level {levels[t]}' for t in across)}: only nodes of one level "
                           "can be merged", "merge-across-levels")  # fmt: skip
    if view.root_of[target] != target:
        raise Conflict(f"theme {target} is merged into theme {view.root_of[target]}; merge into that one",
                       "theme-merged")  # fmt: skip
    if target in sources:
        raise InvalidInput("a theme cannot be merged into itself", "merge-into-itself")
    for source in sources:
        _edit(session, job.project_id, source).merged_into = target
    session.flush()
    refresh_derived(session, job.id)
    return theme_detail(session, job, target)


def unmerge_theme(session: Session, job: Job, theme_id: int) -> dict[str, Any]:
    """Show a merged node on its own again."""
    theme_row(session, job.id, theme_id)
    edit = session.get(ThemeEdit, (job.project_id, theme_id))
    if edit is None or edit.merged_into is None:
        raise Conflict(f"theme {theme_id} is not merged into another theme", "theme-not-merged")
    edit.merged_into = None
    session.flush()
    refresh_derived(session, job.id)
    return theme_detail(session, job, theme_id)


def list_edits(session: Session, project_id: str) -> list[dict[str, Any]]:
    edits = sorted(project_edits(session, project_id).values(), key=lambda e: e.theme_id)
    return [{"theme_id": e.theme_id, "name": e.label, "label": e.label, "hidden": e.hidden,
             "merged_into": e.merged_into, "updated_at": e.updated_at} for e in edits]  # fmt: skip
