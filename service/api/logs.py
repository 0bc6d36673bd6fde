"""The API's logs: report tokens redacted from the access log, and log writes kept off the event loop."""

from __future__ import annotations

import atexit
import logging
import queue
import re
from logging.handlers import QueueHandler, QueueListener

UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


def install() -> None:
    """Redact tokens in the access log; hand uvicorn's log records to a thread that writes them."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
    for name in UVICORN_LOGGERS:
        write_in_background(logging.getLogger(name))


class RedactTokens(logging.Filter):
    """Keeps report tokens (``?token=``, a secret in the URL) out of the access log."""

    PATTERN = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1[redacted]", record.msg)
        return True


class PassRecord(QueueHandler):
    """Queues the record as it is: uvicorn's formatters read ``record.args``, which ``QueueHandler`` would merge."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def write_in_background(logger: logging.Logger) -> None:
    """Route the logger's handlers through a queue and a listener thread. A log line is written on the event loop
    thread otherwise, and a write that blocks (a full pipe, a disk flushing dirty pages) stalls every request."""
    handlers = [h for h in logger.handlers if not isinstance(h, PassRecord)]
    if not handlers or len(handlers) != len(logger.handlers):
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(records, *handlers, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)
    logger.handlers = [PassRecord(records)]
