"""The one place settings live: read from the environment (prefix ``FEEDBACK_THEMES_``) by API, workers and CLI."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.pipeline.defaults import DEFAULT_MODEL


class Settings(BaseSettings):
    """Service and pipeline settings. Every field maps to ``FEEDBACK_THEMES_<NAME>``; the analysis options are made
    from them by :func:`worker.analysis_options.from_settings`."""

    model_config = SettingsConfigDict(env_prefix="FEEDBACK_THEMES_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Artifacts: SQLite file, uploads, SAE weights, embedding cache.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite under data_dir.")
    broker_url: str | None = Field(None, description="Celery broker; default: kombu filesystem broker under data_dir.")
    result_backend: str | None = Field(None, description="Celery result backend; default: none needed.")

    embedding_model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or local path.")
    embedding_batch_size: int = Field(32, ge=1)
    embedding_backend: str = Field("auto", description="auto (OpenVINO on CPU when installed, else torch; torch fp16 "
                                   "on CUDA), torch, onnx or openvino. Part of the embedding cache key.")
    embedding_quantize: str = Field("none", description="none or int8 (openvino: static NNCF; onnx: dynamic).")
    embedding_max_seq_length: int | None = Field(None, ge=8, description="Token limit; default: the model's (256).")
    embedding_chunk_size: int = Field(2000, ge=100, description="Texts per embedding task of a Celery group.")
    device: str = Field("auto", description="auto, cpu, cuda or mps for embedding and training.")
    gpu_queue: bool = Field(False, description="Route embedding and training to the `gpu` queue.")

    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1)
    job_soft_time_limit: int = Field(3 * 3600, description="Seconds before a task is asked to stop.")
    job_hard_time_limit: int = Field(3 * 3600 + 300, description="Seconds before a task is killed.")
    broker_visibility_timeout: int = Field(4 * 3600, description="Above the longest job, so no early redelivery.")
    job_stale_after: int | None = Field(None, ge=1, description="Seconds a queued or running job may show no progress "
                                        "before GET marks it failed (retryable); default: hard limit + visibility.")
    rate_limit_per_minute: int = Field(600, ge=0, description="Requests per minute per API key, per API process "
                                       "(token bucket, bursts up to this many); 0: no limit.")
    api_key_cache_seconds: float = Field(30.0, ge=0, description="How long an API process remembers a valid key "
                                         "(a revoked key stops working within this time); 0: look it up every time.")
    auth_failures_per_minute: int = Field(30, ge=0, description="Failed authentications (bad API key or report "
                                          "token) per client address and minute, per API process, before 429; "
                                          "0: no limit.")
    report_token_days: int = Field(90, ge=1, description="Default lifetime of a report token, in days.")
    report_token_max_days: int = Field(365, ge=1, description="Longest lifetime a report token may be given.")

    job_heartbeat_seconds: float = Field(10.0, gt=0, description="How often a task working on a job touches its "
                                         "heartbeat.")
    job_heartbeat_timeout: float = Field(120.0, gt=0, description="A queued or running job whose heartbeat is older "
                                         "than this is re-queued from its stored state by a worker's watchdog.")
    watchdog_interval: float = Field(30.0, gt=0, description="Seconds between a worker's watchdog scans.")
    job_max_redrives: int = Field(3, ge=0, description="Times the watchdog re-queues one job before ending it failed "
                                  "(job-lost; retryable).")
    worker_nice: int = Field(10, ge=0, le=19, description="Niceness of worker processes: the API (nice 0) keeps "
                             "answering polls quickly while workers use every core.")

    spans: bool = Field(True, description="Find themes in the sentences (spans) of each comment rather than in whole "
                        "comments (worker/pipeline/spans.py); sizes and shares still count comments.")
    smoothing_neighbors: int = Field(15, ge=0, description="Neighbours each embedding is averaged with before the "
                                     "SAE (worker/pipeline/smooth.py); 0: no smoothing.")
    smoothing_weight: float = Field(0.8, ge=0, le=1, description="Weight of the neighbours' mean in the SAE input.")
    theme_levels: bool = Field(True, description="Also train an SAE of twice the dictionary size for the tree's "
                               "sub-themes (worker/pipeline/tree.py; about 2x the SAE time).")

    public_url: str | None = Field(None, description="The API's address as people reach it (e.g. "
                                   "https://themes.example.com): links in webhook payloads start with it; default: "
                                   "links are paths.")
    webhook_allow_private: bool = Field(False, description="Allow webhook URLs whose host is or resolves to a "
                                        "private, loopback, link-local or otherwise non-public address, and plain "
                                        "http:// URLs (a receiver on this machine or network).")
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one webhook delivery attempt may take.")
    webhook_backoff_seconds: float = Field(10.0, gt=0, description="Wait before the second attempt of a failed "
                                           "webhook delivery; doubled for each attempt after it.")
    webhook_max_attempts: int = Field(8, ge=1, description="Attempts of one webhook delivery before it is failed.")
    webhook_resend_after: float = Field(300.0, gt=0, description="Seconds a pending webhook delivery may wait past "
                                        "its due time before a worker's watchdog sends its task again (a lost "
                                        "message, a worker killed mid-delivery).")
    webhooks_per_project: int = Field(20, ge=1, description="Most webhooks one project may have.")

    alert_min_count: int = Field(10, ge=1, description="Fewest comments of a node in the window (and, for a "
                                 "sentiment drop, before it) for an alert on it.")
    alert_fdr: float = Field(0.01, gt=0, le=1, description="False discovery rate of the spike and sentiment drop "
                             "tests (Benjamini-Hochberg across the nodes of one window): an alert needs q below it.")
    alert_min_lift: float = Field(2.0, ge=1, description="Fewest times a node's share of the window must be its share "
                                  "before it for a spike or a new theme alert.")
    alert_min_drop: float = Field(0.2, gt=0, le=2, description="Smallest fall of a node's mean sentiment (scale -1..1) "
                                  "for a sentiment drop alert.")
    alert_max_per_job: int = Field(3, ge=0, description="Most alerts one job makes, strongest first; 0: none.")

    seed: int = 0

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "feedback-themes.sqlite"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem://")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def projects_dir(self) -> Path:
        return self.data_dir / "projects"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing the environment)."""
    return Settings()
