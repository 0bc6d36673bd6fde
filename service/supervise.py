"""Process supervision for ``feedback-themes serve``: its embedded worker is started again when it dies, and exits
when ``serve`` dies (whatever killed it), so no worker is left behind as an orphan."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> None:
    """Run this process (and what it forks) at niceness ``nice`` at least, so an API on the same host keeps
    answering while workers use every core."""
    try:
        current = os.nice(0)
        if nice > current:
            os.nice(nice - current)
    except OSError:  # not permitted here: keep the current priority
        pass


def exit_with_parent(parent_pid: int, interval: float = 1.0, grace: float = 30.0) -> threading.Thread:
    """Watch from a thread: once ``parent_pid`` is no longer this process's parent (it died, even by SIGKILL), stop
    this process with SIGQUIT (Celery's cold shutdown: running tasks end now; the watchdog re-queues their jobs),
    then SIGKILL after ``grace`` seconds if it is still alive."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        log.warning("parent process %d is gone: stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGQUIT)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


class Supervisor:
    """Runs ``command`` in a session of its own and starts it again whenever it exits, until :meth:`stop`.

    A child that keeps dying soon after its start is restarted after a growing pause (1 s doubling to
    ``max_backoff``); one that ran at least ``steady_after`` seconds is restarted at once.
    """

    def __init__(self, command: list[str], env: dict[str, str], say: Callable[[str], None] = log.warning,
                 steady_after: float = 60.0, max_backoff: float = 30.0) -> None:  # fmt: skip
        self.command, self.env, self.say = command, env, say
        self.steady_after, self.max_backoff = steady_after, max_backoff
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> "Supervisor":
        self._spawn()
        self.thread.start()
        return self

    def _spawn(self) -> None:
        with self.lock:
            if not self.stopping.is_set():
                self.proc = subprocess.Popen(self.command, env=self.env, start_new_session=True)
                self.started = time.monotonic()

    def _watch(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            proc = self.proc
            code = proc.wait() if proc is not None else None
            if self.stopping.is_set():
                return
            backoff = 1.0 if time.monotonic() - self.started >= self.steady_after else min(backoff * 2, self.max_backoff)
            self.restarts += 1
            self.say(f"the worker exited (code {code}); starting it again in {backoff:.0f} s")
            if self.stopping.wait(backoff):
                return
            self._spawn()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop supervising and end the child: SIGTERM (Celery's warm shutdown), SIGKILL after ``timeout``."""
        self.stopping.set()
        with self.lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
