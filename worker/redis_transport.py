"""kombu's Redis transport, made to survive a broker restart.

After the connection to Redis is lost, Celery reconnects on a new connection; a channel of the old one can still be
used: to restore unacknowledged messages while the old connection is closed, and to acknowledge a task that was
running during the outage. kombu's Redis channel then fails with ``AttributeError`` (``'NoneType' object has no
attribute 'hostname'``: its connection's client is gone), which Celery does not count as a connection error: the
worker shuts down. Here that case is the connection error it is, so Celery logs it and carries on. (An
acknowledgement lost this way is harmless: the job row knows the work is done, see ``worker.liveness``.)
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("this channel's broker connection is closed")
        return super()._connparams(asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
