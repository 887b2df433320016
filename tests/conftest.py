"""Shared fixtures: a real Redis for the whole session, flushed before each test that asks.

``redis_url`` (session): ``REDIS_URL`` from the environment if set -- note that tests FLUSHALL
it, so point it at a scratch server -- else a private ``redis-server`` started on a free
loopback port by :mod:`firstmotion.redis_server` and stopped at the end of the session.
``redis_client`` (function): a ``redis.Redis`` on that server, flushed before the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    from firstmotion.redis_server import RedisServer, RedisServerError

    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    try:
        server = RedisServer().start()
    except RedisServerError as exc:
        pytest.fail(f"cannot start a real Redis for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()
