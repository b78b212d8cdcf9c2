"""The jti replay cache: atomic across processes, expiring, and refusing an unsafe state directory."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from cds_service.security import ReplayCache, ReplayCacheError


def test_second_use_is_a_replay_until_it_expires(tmp_path: Path) -> None:
    now = [1000.0]
    cache = ReplayCache(tmp_path, clock=lambda: now[0])
    assert cache.remember("iss", "jti-1", expires=1300)
    assert not cache.remember("iss", "jti-1", expires=1300)
    assert cache.remember("other-iss", "jti-1", expires=1300)
    now[0] = 1301.0  # the token could not be accepted any more anyway
    assert cache.remember("iss", "jti-1", expires=1600)
    assert not cache.remember("iss", "jti-1", expires=1600)


def test_expired_entries_are_purged(tmp_path: Path) -> None:
    now = [1000.0]
    cache = ReplayCache(tmp_path, clock=lambda: now[0], purge_every=10)
    for index in range(20):
        cache.remember("iss", f"jti-{index}", expires=1100)
    assert cache.count() == 20
    now[0] = 1200.0
    cache.remember("iss", "fresh", expires=1500)
    assert cache.count() == 1


def _race(directory: str, jti: str, barrier, results) -> None:
    cache = ReplayCache(Path(directory))
    barrier.wait()
    results.put(cache.remember("https://ehr.example", jti, expires=4_000_000_000))


def test_concurrent_processes_accept_a_jti_exactly_once(tmp_path: Path) -> None:
    """What gunicorn workers do when the same token reaches two of them at once."""
    context = multiprocessing.get_context("fork")
    workers = 6
    for round_ in range(3):
        barrier, results = context.Barrier(workers), context.Queue()
        processes = [context.Process(target=_race, args=(str(tmp_path), f"jti-{round_}", barrier, results)) for _ in range(workers)]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=20) for _ in processes]
        for process in processes:
            process.join(timeout=20)
        assert sorted(outcomes) == [False] * (workers - 1) + [True]


def test_a_cache_created_before_fork_works_in_the_child(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path)
    assert cache.remember("iss", "parent", expires=4_000_000_000)
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def child() -> None:
        results.put((cache.remember("iss", "parent", expires=4_000_000_000), cache.remember("iss", "child", expires=4_000_000_000)))

    process = context.Process(target=child)
    process.start()
    assert results.get(timeout=20) == (False, True)
    process.join(timeout=20)
    assert not cache.remember("iss", "child", expires=4_000_000_000)


def test_the_database_is_private(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path / "state")
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert cache.path.stat().st_mode & 0o077 == 0


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ReplayCacheError, match="writable by other users"):
        ReplayCache(shared)


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ReplayCacheError, match="not a plain directory"):
        ReplayCache(tmp_path / "link")


def test_an_unwritable_location_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReplayCacheError, match="cannot create the state directory"):
        ReplayCache(blocker / "state")
