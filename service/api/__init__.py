"""The REST API (FastAPI). Never imports torch: jobs are enqueued by task name."""
