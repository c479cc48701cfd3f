"""The token stores: cache semantics, compare-and-delete invalidation, and the single-flight refresh lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from scrm.wechat.tokens import LocalTokenStore, RedisTokenStore, TokenLockTimeout, TokenStore

from .conftest import REDIS_URL, TOKEN_PREFIX


@pytest.fixture(params=["local", "redis"])
def make_store(request: pytest.FixtureRequest, redis_client: redis.Redis) -> Callable[..., TokenStore]:
    """Stores that share state the way their backend does: Redis stores share Redis, a local store is one object."""
    shared_local = LocalTokenStore(lock_wait_s=0.5)

    def build(**options: float) -> TokenStore:
        if request.param == "local":
            return shared_local
        return RedisTokenStore(redis_client, prefix=TOKEN_PREFIX, **options)

    return build


def test_set_then_get_until_expiry(make_store: Callable[..., TokenStore]) -> None:
    store = make_store()
    assert store.get("wx1") is None
    store.set("wx1", "token-1", time.time() + 60)
    cached = store.get("wx1")
    assert cached is not None
    assert cached.token == "token-1"
    assert cached.is_fresh()
    assert "token-1" not in repr(cached)
    store.set("wx1", "token-2", time.time() - 1)
    assert store.get("wx1") is None


def test_invalidate_drops_only_the_named_token(make_store: Callable[..., TokenStore]) -> None:
    store = make_store()
    store.set("wx1", "fresh", time.time() + 60)
    store.invalidate("wx1", "stale")  # a late caller holding an older token
    assert store.get("wx1").token == "fresh"
    store.invalidate("wx1", "fresh")
    assert store.get("wx1") is None


def test_refresh_lock_admits_one_holder_at_a_time(make_store: Callable[..., TokenStore]) -> None:
    holders, peak, guard = 0, 0, threading.Lock()

    def hold() -> None:
        nonlocal holders, peak
        with make_store().refresh_lock("wx1"):
            with guard:
                holders += 1
                peak = max(peak, holders)
            time.sleep(0.02)
            with guard:
                holders -= 1

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 1


def test_refresh_lock_times_out_while_held(make_store: Callable[..., TokenStore]) -> None:
    holder = make_store(lock_wait_s=0.2)
    waiter = make_store(lock_wait_s=0.2)
    with holder.refresh_lock("wx1"):
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                with waiter.refresh_lock("wx1"):
                    pass
            except TokenLockTimeout as error:
                outcome.append(error)

        thread = threading.Thread(target=wait)
        thread.start()
        thread.join()
    assert outcome
    assert isinstance(outcome[0], TimeoutError)


def test_redis_entry_expires_with_the_token(redis_client: redis.Redis) -> None:
    store = RedisTokenStore(redis_client, prefix=TOKEN_PREFIX)
    store.set("wx1", "token", time.time() + 100)
    assert 95_000 < redis_client.pttl(f"{TOKEN_PREFIX}:wx1") <= 100_000


def test_redis_lock_is_released_only_by_its_owner(redis_client: redis.Redis) -> None:
    first = RedisTokenStore(redis_client, prefix=TOKEN_PREFIX, lock_ttl_s=0.1, lock_wait_s=1.0)
    second = RedisTokenStore(redis_client, prefix=TOKEN_PREFIX, lock_ttl_s=5.0, lock_wait_s=1.0)
    with first.refresh_lock("wx1"):
        time.sleep(0.2)  # the first holder overran its lease; the second one takes the lock
        second_holds = second.refresh_lock("wx1")
        second_holds.__enter__()
    # Leaving the first block must not have deleted the second holder's lock.
    assert redis_client.get(f"{TOKEN_PREFIX}:wx1:lock") is not None
    second_holds.__exit__(None, None, None)
    assert redis_client.get(f"{TOKEN_PREFIX}:wx1:lock") is None


def test_redis_store_ignores_an_unreadable_entry(redis_client: redis.Redis) -> None:
    redis_client.set(f"{TOKEN_PREFIX}:wx1", "not json")
    assert RedisTokenStore(redis_client, prefix=TOKEN_PREFIX).get("wx1") is None


def test_redis_store_works_with_a_decoding_client(redis_client: redis.Redis) -> None:
    decoding = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store = RedisTokenStore(decoding, prefix=TOKEN_PREFIX)
    store.set("wx1", "token", time.time() + 60)
    assert store.get("wx1").token == "token"
    store.invalidate("wx1", "token")
    with store.refresh_lock("wx1"):
        assert store.get("wx1") is None
    decoding.close()
