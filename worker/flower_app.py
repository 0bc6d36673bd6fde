"""Celery app target for Flower: ``celery -A worker.flower_app flower`` (monitoring; needs the ``[flower]`` extra).

Configured from the same ``FEEDBACK_THEMES_*`` settings as the API and the workers; imports no torch.
"""

from __future__ import annotations

from worker.celery_app import create_celery

app = create_celery()
