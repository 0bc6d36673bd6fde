"""The API's log lines are written by a listener thread, formatted as uvicorn formats them."""

from __future__ import annotations

import io
import logging
import threading
import time

from uvicorn.logging import AccessFormatter

from service.api.logs import PassRecord, write_in_background


def test_log_lines_are_written_off_the_calling_thread_with_uvicorn_formatting():
    logger = logging.getLogger("test.api.access")
    logger.propagate = False
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    write_in_background(logger)
    write_in_background(logger)  # a second call (a second app in one process) changes nothing
    assert len(logger.handlers) == 1 and isinstance(logger.handlers[0], PassRecord)
    written_by: list[str] = []
    real_emit = handler.emit
    handler.emit = lambda record: written_by.append(threading.current_thread().name) or real_emit(record)  # type: ignore[method-assign]
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/jobs/abc", "1.1", 200)
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue().strip() == '127.0.0.1:5000 - "GET /v1/jobs/abc HTTP/1.1" 200 OK'  # uvicorn's own fields
    assert written_by and written_by[0] != "MainThread"
