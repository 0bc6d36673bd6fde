"""A job's theme tree as the project's edits show it: renamed, hidden, and merged nodes folded into their target.

Every node (category, theme, sub-theme) is edited alike; a merge joins nodes of one level. A node is *shown* as the
node it was merged into (its *root*); a shown node's parent is the root of its stored parent, its children the roots
of its merged nodes' children. A hidden node hides its descendants too (they are left out of lists and reports).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.models import LEVEL_THEME, Job, ThemeEdit, ThemeRow


@dataclass
class JobView:
    """A job's nodes as the project's edits show them: which node each is shown as, which are hidden."""

    edits: dict[int, ThemeEdit]
    root_of: dict[int, int]  # node id → the node it is shown as (itself, or the one it was merged into)
    groups: dict[int, list[int]] = field(default_factory=dict)  # shown node → its nodes (itself first)
    roots: list[int] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)  # shown nodes neither hidden nor under a hidden node
    level_of: dict[int, int] = field(default_factory=dict)
    parent_of: dict[int, int | None] = field(default_factory=dict)  # node id → its stored parent's id
    children_of: dict[int, list[int]] = field(default_factory=dict)  # shown node → its shown children

    def shown_parent(self, node: int) -> int | None:
        """The shown parent of a shown node (None for a category, or a parent absent from the job)."""
        parent = self.parent_of.get(node)
        return self.root_of.get(parent) if parent is not None else None

    def shown_children(self, node: int) -> list[int]:
        """The shown children of a shown node: the roots of its nodes' stored children, in id order."""
        return self.children_of.get(node, [])

    def at_level(self, level: int, nodes: Iterable[int] | None = None) -> list[int]:
        """The visible nodes (or ``nodes``) of a level."""
        return [n for n in (self.visible if nodes is None else nodes) if self.level_of.get(n, LEVEL_THEME) == level]

    def record(self, row: ThemeRow) -> dict[str, Any]:
        """The node's record: the job's, overlaid with the derived figures, its place in the shown tree and the
        project's edits (a new name: ``name`` and ``label``, the generated one kept as ``original_name`` and
        ``original_label``)."""
        derived = dict(row.derived or {})
        derived.pop("merged_into", None)
        record = {**row.record, "impact": None, "emerging": False, "emerging_reason": None, "merged": [], **derived}
        record.setdefault("name", record["label"])
        record["level"] = row.level
        if row.theme_id in self.groups:
            record["parent"] = self.shown_parent(row.theme_id)
            record["children"] = self.shown_children(row.theme_id)
        else:
            record.setdefault("parent", row.parent_id)
            record.setdefault("children", [])
        edit = self.edits.get(row.theme_id)
        record["hidden"] = bool(edit and edit.hidden)
        if edit and edit.label:
            record["original_name"], record["original_label"] = record["name"], record["label"]
            record["name"] = record["label"] = edit.label
        return record


def project_edits(session: Session, project_id: str) -> dict[int, ThemeEdit]:
    return {e.theme_id: e for e in session.scalars(select(ThemeEdit).where(ThemeEdit.project_id == project_id))}


def resolve_roots(theme_ids: Iterable[int], edits: dict[int, ThemeEdit],
                  level_of: dict[int, int] | None = None) -> dict[int, int]:  # fmt: skip
    """Each present node's shown node, following merges (to nodes present in this job, of the same level)
    transitively."""
    present = set(theme_ids)
    level_of = level_of or {}

    def root(theme: int) -> int:
        seen = {theme}
        level = level_of.get(theme, LEVEL_THEME)
        while ((edit := edits.get(theme)) is not None and edit.merged_into in present and edit.merged_into not in seen
               and level_of.get(edit.merged_into, LEVEL_THEME) == level):  # fmt: skip
            theme = edit.merged_into
            seen.add(theme)
        return theme

    return {t: root(t) for t in present}


def job_view(session: Session, job: Job) -> JobView:
    nodes = session.execute(select(ThemeRow.theme_id, ThemeRow.level, ThemeRow.parent_id)
                            .where(ThemeRow.job_id == job.id)).all()  # fmt: skip
    level_of = {n.theme_id: n.level for n in nodes}
    parent_of = {n.theme_id: n.parent_id for n in nodes}
    edits = project_edits(session, job.project_id)
    root_of = resolve_roots(level_of, edits, level_of)
    groups: dict[int, list[int]] = {}
    for theme in sorted(root_of, key=lambda t: (t != root_of[t], t)):
        groups.setdefault(root_of[theme], []).append(theme)
    children: dict[int, set[int]] = {}
    for node, parent in parent_of.items():
        # a node merged into another is shown as that one, under that one's parent: it links nothing itself
        if parent in root_of and root_of[node] == node and node != root_of[parent]:
            children.setdefault(root_of[parent], set()).add(node)
    view = JobView(edits, root_of, groups, sorted(groups), [], level_of, parent_of,
                   {n: sorted(c) for n, c in children.items()})  # fmt: skip
    view.visible = [r for r in view.roots if not _hidden(view, r)]
    return view


def _hidden(view: JobView, node: int) -> bool:
    """The shown node is hidden, or one of its shown ancestors is."""
    seen: set[int] = set()
    current: int | None = node
    while current is not None and current not in seen:
        seen.add(current)
        edit = view.edits.get(current)
        if edit is not None and edit.hidden:
            return True
        current = view.shown_parent(current)
    return False
