"""``tensorgates sweep`` on Dask: bad grids, Pareto fronts, a real scheduler with two workers,
a worker lost mid-sweep, and an interrupted sweep resumed with nothing computed twice.

Every sweep runs in its own folder (its own ``build/`` and cache); each worker of the real
cluster runs in a folder of its own too, so the records can only reach the client's cache
through the client: workers share no disk with it.
"""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateware.registry import get_block
from tensorgates.sweep import expand, pareto, parse_grid

BIN = Path(sys.executable).parent
#: Four small points, one cheap target: each task takes seconds.
SWEEP = ["sweep", "systolic_gemm", "--grid", "rows=1,2", "--grid", "cols=1,2", "--set",
         "width=4", "--targets", "generic", "--bench", "none", "--name", "small"]
POINTS = 4
#: Two points, for the comparison of the embedded cluster with a real scheduler.
PAIR = [*SWEEP[:4], "--grid", "cols=1", *SWEEP[6:]]


def _tensorgates(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tensorgates", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _rows(folder: Path) -> list[dict]:
    with open(folder / "build" / "sweep" / "small" / "points.csv") as file:
        return list(csv.DictReader(file))


def _journal(folder: Path) -> list[dict]:
    path = folder / "build" / "sweep" / "small" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _comparable(rows: list[dict]) -> list[dict]:
    """Rows without what differs between runs of the same work (times, log folders)."""
    return sorted(({k: v for k, v in row.items() if k not in ("wall_s",)} for row in rows),
                  key=lambda row: row["design"])


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path):
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, each worker in
    a folder of its own."""
    scheduler_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", scheduler_file], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait_for(scheduler_file.exists, 60, "the scheduler")
    address = json.loads(scheduler_file.read_text())["address"]
    workers = []
    for index in range(2):
        folder = tmp_path / f"worker{index}"
        folder.mkdir()
        workers.append(subprocess.Popen(
            [BIN / "dask", "worker", address, "--nthreads", "1", "--no-nanny",
             "--no-dashboard", "--name", f"w{index}"], cwd=folder,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    processes += workers

    def connected() -> bool:
        from distributed import Client
        with Client(address, timeout="10s") as client:
            return len(client.scheduler_info()["workers"]) == 2
    _wait_for(connected, 60, "two workers")
    yield address, workers
    for process in processes:
        process.kill()
        process.wait()


def test_scheduler_gives_the_records_of_the_embedded_cluster(tmp_path, cluster):
    address, _workers = cluster
    embedded, remote = tmp_path / "embedded", tmp_path / "remote"
    embedded.mkdir()
    remote.mkdir()
    code, out, err = _finish(_tensorgates([*PAIR, "--workers", "2"], embedded))
    assert code == 0, err
    code, out, err = _finish(_tensorgates([*PAIR, "--scheduler", address], remote))
    assert code == 0, err
    assert "Dask dashboard" in out
    for worker in ("worker0", "worker1"):
        assert not list((tmp_path / worker).glob("build/cache/*.json")), \
            "a worker wrote the cache: records must be stored by the client"
    rows = _rows(remote)
    assert len(rows) == 2 and all(int(row["transistors"]) > 0 for row in rows), rows
    assert _comparable(rows) == _comparable(_rows(embedded))
    # every record is in the client's cache now: a rerun computes nothing
    code, out, err = _finish(_tensorgates([*PAIR, "--scheduler", address], remote))
    assert code == 0, err
    assert "0 tasks computed, 2 cached" in out, out
    assert {entry["how"] for entry in _journal(remote)[2:]} == {"cached"}


def test_a_lost_worker_s_tasks_are_retried(tmp_path, cluster):
    address, workers = cluster
    sweep = _tensorgates([*SWEEP, "--scheduler", address], tmp_path)
    _wait_for(lambda: _journal(tmp_path) or sweep.poll() is not None, 300, "a first record")
    assert sweep.poll() is None, "the sweep ended before a worker could be killed"
    workers[0].kill()
    code, _out, err = _finish(sweep)
    assert code == 0, err
    rows = _rows(tmp_path)
    assert len({row["design"] for row in rows}) == len(rows) == POINTS, rows
    assert all(row["transistors"] and not row["error"] for row in rows), rows


def _default_sigint() -> None:
    """Ctrl-C as in a terminal: a pytest-xdist worker ignores SIGINT, and a child inherits
    that (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_sweep_resumes_without_computing_a_point_twice(tmp_path):
    first = _tensorgates([*SWEEP, "--workers", "1"], tmp_path, preexec_fn=_default_sigint)
    _wait_for(lambda: _journal(tmp_path) or first.poll() is not None, 300, "a first record")
    assert first.poll() is None, "the sweep ended before it could be interrupted"
    first.send_signal(signal.SIGINT)
    code, out, err = _finish(first)
    assert code == 1 and "interrupted" in err, (code, out, err)
    done_first = {e["key"] for e in _journal(tmp_path) if e["how"] == "computed"}
    assert 0 < len(done_first) < POINTS
    code, out, err = _finish(_tensorgates([*SWEEP, "--workers", "1"], tmp_path))
    assert code == 0, err
    journal = _journal(tmp_path)
    computed = [e["key"] for e in journal if e["how"] == "computed"]
    assert len(computed) == len(set(computed)), f"a task was computed twice: {journal}"
    second_run = journal[-1]["run"]
    assert {e["key"] for e in journal if e["run"] == second_run and e["how"] == "cached"} \
        >= done_first
    rows = _rows(tmp_path)
    assert len(rows) == POINTS and all(row["transistors"] for row in rows), rows
    assert len(set(computed)) == POINTS


@pytest.mark.parametrize("args, message", [
    (["--grid", "rowz=1,2"], "unknown parameter 'rowz'"),
    (["--grid", "rows="], "--grid rows: empty list of values"),
    (["--grid", "rows=2,99"], "rows=99 is not allowed; expected int from 1 to 32"),
    (["--grid", "rows"], "--grid expects key=v1,v2,..."),
    (["--grid", "rows=2", "--set", "rows=4"], "--grid rows: given twice"),
    (["--grid", "rows=2", "--targets", "vivado"], "--targets 'vivado' is not allowed"),
    (["--grid", "rows=2", "--bench", "slow"], "--bench 'slow' is not allowed"),
    ([], "give at least one --grid"),
])
def test_bad_grids_are_one_line_and_exit_2(tmp_path, args, message):
    code, out, err = _finish(_tensorgates(["sweep", "systolic_gemm", *args], tmp_path))
    assert code == 2, (code, out, err)
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "build" / "sweep").exists()


def test_invalid_combinations_are_skipped_with_their_reason():
    entry = get_block("mx_quant")
    axes = parse_grid(entry.config_class, ["lanes=3,4"], {"block_size": "32"})
    points, skipped = expand(entry, axes, {"block_size": "32"})
    assert [p.settings for p in points] == [{"block_size": "32", "lanes": "4"}]
    assert len(skipped) == 1 and skipped[0][0] == {"lanes": "3"}
    assert "lanes" in skipped[0][1] and "multiple" in skipped[0][1]


def test_pareto_front():
    # (area, throughput): the third is dominated by the second, the last ties the first's area
    points = [(10, 1.0), (20, 3.0), (25, 2.0), (40, 3.0), (10, 0.5)]
    assert pareto(points) == [True, True, False, False, False]


def test_report_links_the_sweeps(tmp_path, monkeypatch):
    from synth.summary import write_report
    folder = tmp_path / "build" / "sweep" / "demo"
    folder.mkdir(parents=True)
    (folder / "index.md").write_text("# Sweep `demo`\n")
    monkeypatch.chdir(tmp_path)
    index = write_report(Path("build"))
    assert "sweep/demo/index.md" in index.read_text()
