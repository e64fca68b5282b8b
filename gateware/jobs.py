"""Jobs, caching and the executor seam (DESIGN §7b).

A unit of work is a pure function of its inputs returning a small JSON record; results are
cached under ``build/cache`` by a digest of those inputs, so reruns skip finished work. Work is
submitted to a local process pool; a distributed executor can replace :func:`run_all`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["cache_key", "cached", "run_all"]

CACHE_DIR = Path("build") / "cache"


def cache_key(**inputs: Any) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached(key: str, compute: Callable[[], dict], *, refresh: bool = False) -> dict:
    """The record stored under ``key``, computing and storing it when absent."""
    path = CACHE_DIR / f"{key}.json"
    if path.exists() and not refresh:
        return json.loads(path.read_text())
    record = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    return record


def run_all(function: Callable[..., dict], jobs: Iterable[dict], *, workers: int = 1,
            progress: Callable[[int, int, dict], None] | None = None) -> list[dict]:
    """Run ``function(**job)`` for every job, in a process pool when ``workers > 1``.

    Results come back in job order; ``progress(done, total, record)`` is called as each ends.
    """
    jobs = list(jobs)
    if workers <= 1:
        results = []
        for index, job in enumerate(jobs):
            results.append(function(**job))
            if progress:
                progress(index + 1, len(jobs), results[-1])
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, **job) for job in jobs]
        results = []
        for index, future in enumerate(futures):
            results.append(future.result())
            if progress:
                progress(index + 1, len(jobs), results[-1])
        return results
