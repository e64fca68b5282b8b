"""Jobs, caching and the executor seam (DESIGN §7b).

A unit of work is a pure function of its inputs returning a small JSON record. Records are
cached under ``build/cache`` by a digest of those inputs, so reruns skip finished work. The
process that asks for the work (the *client*) looks records up and writes them; workers only
compute, so workers on other machines need no shared disk.

Work runs inline (one worker, no scheduler), on an embedded Dask ``LocalCluster`` (``workers``
processes of one thread each: simulators and place-and-route are single-threaded) or on a
running Dask scheduler named by address (``tcp://HOST:PORT``). Dask retries a lost worker's
tasks on the others.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["CACHE_DIR", "cache_key", "cached", "dask_client", "lookup", "package_versions",
           "run_all", "store", "use_scheduler"]

CACHE_DIR = Path("build") / "cache"
#: The scheduler that :func:`run_all` uses when its caller names none (``use_scheduler``).
_default_scheduler: str | None = None


@contextlib.contextmanager
def use_scheduler(address: str | None) -> Iterator[None]:
    """Send every :func:`run_all` inside the block to the Dask scheduler at ``address``
    (``tensorgates bench --scheduler``), without threading it through every benchmark."""
    global _default_scheduler
    previous, _default_scheduler = _default_scheduler, address
    try:
        yield
    finally:
        _default_scheduler = previous


def cache_key(**inputs: Any) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]


def package_versions(*packages: str) -> dict[str, str]:
    """The installed version of each package ("missing" when absent): part of the cache key of
    every record a tool computes."""
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    return versions


def lookup(key: str) -> dict | None:
    """The record stored under ``key``, or None."""
    path = CACHE_DIR / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() else None


def store(key: str, record: dict) -> None:
    """Store ``record`` under ``key`` (written whole, then renamed: a reader never sees half)."""
    path = CACHE_DIR / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=2, default=str))
    partial.replace(path)


def cached(key: str, compute: Callable[[], dict], *, refresh: bool = False) -> dict:
    """The record stored under ``key``, computing and storing it when absent."""
    record = None if refresh else lookup(key)
    if record is None:
        record = compute()
        store(key, record)
    return record


@contextlib.contextmanager
def dask_client(*, workers: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: of the scheduler at ``scheduler``, or of an embedded ``LocalCluster``
    of ``workers`` single-threaded processes (closed on exit)."""
    from distributed import Client, LocalCluster
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as error:
            raise ValueError(f"--scheduler {scheduler}: no Dask scheduler answers there "
                             f"({error})") from None
        with client:
            yield client
        return
    # No memory limit: a nanny would restart a worker in the middle of a large Verilator build.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           memory_limit=0, dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        # an interrupted run must not wait for the workers' running tools to finish
        cluster.close(timeout=10)


def run_all(function: Callable[..., dict], jobs: Iterable[dict], *, workers: int = 1,
            scheduler: str | None = None,
            progress: Callable[[int, int, dict], None] | None = None) -> list[dict]:
    """Run ``function(**job)`` for every job; results come back in job order.

    One worker and no scheduler runs inline; otherwise the jobs go to Dask (see
    :func:`dask_client`). ``progress(done, total, record)`` is called as each job ends. A job's
    exception is raised.
    """
    jobs = list(jobs)
    scheduler = scheduler or _default_scheduler
    results: list[dict] = []

    def finished(record: dict) -> None:
        if progress:
            progress(len(results), len(jobs), record)

    if workers <= 1 and not scheduler:
        for job in jobs:
            results.append(function(**job))
            finished(results[-1])
        return results
    from distributed import as_completed
    with dask_client(workers=workers, scheduler=scheduler) as client:
        futures = {client.submit(function, **job, pure=False): index
                   for index, job in enumerate(jobs)}
        done: dict[int, dict] = {}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            results.append(done[futures[future]])
            finished(results[-1])
    return [done[index] for index in range(len(jobs))]
