"""The throwaway redis-server helper: starts a real server, honours REDIS_URL, stops cleanly."""

from __future__ import annotations

import pytest
import redis

from firstmotion import redis_server
from firstmotion.redis_server import RedisServer, binary_version, find_redis_server


def test_finds_a_recent_enough_binary():
    path = find_redis_server()
    assert binary_version(path) >= redis_server.MIN_VERSION


def test_server_starts_answers_and_stops_without_persistence():
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()
        url = server.url
    assert not server.running
    dead = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        dead.ping()
        alive = True
    except redis.ConnectionError:
        alive = False
    assert not alive


def test_two_servers_get_different_ports():
    with RedisServer() as a, RedisServer() as b:
        assert a.port != b.port
        redis.Redis.from_url(a.url).set("k", "a")
        assert redis.Redis.from_url(b.url).get("k") is None


def test_redis_url_env_means_use_that_one():
    assert redis_server.redis_url({"REDIS_URL": "redis://example:6390/2"}) == (
        "redis://example:6390/2"
    )


def test_fixture_flushes_between_tests_part1(redis_client):
    assert redis_client.dbsize() == 0
    redis_client.set("leftover", 1)


def test_fixture_flushes_between_tests_part2(redis_client):
    assert redis_client.get("leftover") is None


def test_password_protected_server_and_bus_auth():
    from firstmotion.bus import Bus

    with RedisServer(password="s3cret/with:odd@chars") as server:
        assert "s3cret%2Fwith%3Aodd%40chars@" in server.url
        bus = Bus.from_url(server.url)
        assert bus.client.ping()
        bus.close()
        open_url = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(open_url).set("k", 1)
        wrong = f"redis://:nope@127.0.0.1:{server.port}/0"
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            Bus.from_url(wrong).client.ping()
