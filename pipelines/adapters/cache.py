"""Cache of hot reads (latest results, compliance status): Redis when configured, in-process otherwise.

Values are JSON documents. Every entry lives at most ``ttl_seconds``; a run that publishes
invalidates the whole cache at once (``publish`` and the compliance step call :meth:`Cache.invalidate`),
which reaches every service process through Redis. Without Redis each process has its own cache, so
a run published by another process (the Airflow worker) is seen at the latest after the TTL; a run
the service started itself invalidates its cache when it ends.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any


class Cache(ABC):
    """JSON values by key, each for at most ``ttl_seconds``."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds

    @abstractmethod
    def get_text(self, key: str) -> str | None: ...

    @abstractmethod
    def set_text(self, key: str, text: str) -> None: ...

    @abstractmethod
    def invalidate(self) -> None:
        """Forget every entry (a run published new results)."""

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` stored under it (None results are not cached)."""
        text = self.get_text(key)
        if text is not None:
            return json.loads(text)
        value = compute()
        if value is not None:
            self.set_text(key, json.dumps(value, default=str))
        return value


class InProcessCache(Cache):
    """A dictionary with expiry times, shared by the threads of one process."""

    def __init__(self, ttl_seconds: float) -> None:
        super().__init__(ttl_seconds)
        self._entries: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get_text(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def set_text(self, key: str, text: str) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_seconds, text)

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisCache(Cache):
    """Keys ``<prefix><key>`` in Redis with an expiry; invalidation deletes every key under the prefix."""

    def __init__(self, url: str, prefix: str, ttl_seconds: float) -> None:
        import redis

        super().__init__(ttl_seconds)
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix

    def get_text(self, key: str) -> str | None:
        value = self.client.get(self.prefix + key)
        return None if value is None else value.decode()

    def set_text(self, key: str, text: str) -> None:
        self.client.set(self.prefix + key, text, px=max(1, int(self.ttl_seconds * 1000)))

    def invalidate(self) -> None:
        pattern = "".join(f"[{c}]" if c in "*?[]\\" else c for c in self.prefix) + "*"
        keys = list(self.client.scan_iter(match=pattern, count=500))
        for start in range(0, len(keys), 500):
            self.client.delete(*keys[start:start + 500])


def open_cache(redis_url: str, prefix: str, ttl_seconds: float) -> Cache:
    """Redis at ``redis_url``, or an in-process cache when it is empty."""
    return RedisCache(redis_url, prefix, ttl_seconds) if redis_url else InProcessCache(ttl_seconds)
