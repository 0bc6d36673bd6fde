"""A job's themes as the project's edits show them: renamed, hidden, and merged ones folded into their target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.models import Job, ThemeEdit, ThemeRow


@dataclass
class JobView:
    """A job's themes as the project's edits show them: which theme each is shown as, which are hidden."""

    edits: dict[int, ThemeEdit]
    root_of: dict[int, int]  # theme id → the theme it is shown as (itself, or the one it was merged into)
    groups: dict[int, list[int]] = field(default_factory=dict)  # shown theme → its themes (itself first)
    roots: list[int] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)

    def record(self, row: ThemeRow) -> dict[str, Any]:
        """The theme's record: the job's, overlaid with the derived figures and the project's edits."""
        derived = dict(row.derived or {})
        derived.pop("merged_into", None)
        record = {**row.record, "impact": None, "emerging": False, "emerging_reason": None, "merged": [], **derived}
        edit = self.edits.get(row.theme_id)
        record["hidden"] = bool(edit and edit.hidden)
        if edit and edit.label:
            record["original_label"], record["label"] = record["label"], edit.label
        return record


def project_edits(session: Session, project_id: str) -> dict[int, ThemeEdit]:
    return {e.theme_id: e for e in session.scalars(select(ThemeEdit).where(ThemeEdit.project_id == project_id))}


def resolve_roots(theme_ids: Iterable[int], edits: dict[int, ThemeEdit]) -> dict[int, int]:
    """Each present theme's shown theme, following merges (to themes present in this job) transitively."""
    present = set(theme_ids)

    def root(theme: int) -> int:
        seen = {theme}
        while (edit := edits.get(theme)) is not None and edit.merged_into in present and edit.merged_into not in seen:
            theme = edit.merged_into
            seen.add(theme)
        return theme

    return {t: root(t) for t in present}


def job_view(session: Session, job: Job) -> JobView:
    ids = session.scalars(select(ThemeRow.theme_id).where(ThemeRow.job_id == job.id)).all()
    edits = project_edits(session, job.project_id)
    root_of = resolve_roots(ids, edits)
    groups: dict[int, list[int]] = {}
    for theme in sorted(root_of, key=lambda t: (t != root_of[t], t)):
        groups.setdefault(root_of[theme], []).append(theme)
    roots = sorted(groups)
    visible = [r for r in roots if not (r in edits and edits[r].hidden)]
    return JobView(edits, root_of, groups, roots, visible)
