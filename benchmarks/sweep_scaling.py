"""How a sweep's wall time scales with Dask workers: the same sweep, from an empty cache, on
1 worker and then on N, in one run (``python -m benchmarks.sweep_scaling [N]``).

Each run gets a fresh folder under ``build/sweep_scaling/`` (its own ``build/`` and cache), so
neither reuses the other's records. Writes ``build/bench/sweep_scaling.{json,md}``;
``--report-only`` writes them again from the last runs' folders without running anything.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from synth.report import results_table_markdown

__all__ = ["main"]

SWEEP = ["sweep", "systolic_gemm", "--grid", "rows=2,4,8", "--grid", "cols=2,4,8",
         "--targets", "ecp5,generic", "--name", "scaling"]
OUT_DIR = Path("build") / "bench"


def _run(workers: int) -> dict:
    folder = Path("build") / "sweep_scaling" / f"workers{workers}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tensorgates", *SWEEP, "--workers",
                             str(workers)], cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if result.returncode:
        raise RuntimeError(f"sweep on {workers} workers failed: {result.stderr[-2000:]}")
    return {"workers": workers, "wall_s": round(seconds, 1),
            "task_s": round(_task_seconds(folder)),
            "summary": result.stdout.strip().splitlines()[-1],
            "index": str(folder / "build" / "sweep" / "scaling" / "index.md")}


def _task_seconds(folder: Path) -> float:
    """The summed compute seconds of the tasks the run computed (generate tasks aside): what
    the workers did, against which the wall time shows how well they were packed."""
    journal = folder / "build" / "sweep" / "scaling" / "journal.jsonl"
    total = 0.0
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["how"] == "computed":
            record = folder / "build" / "cache" / f"{entry['key']}.json"
            total += json.loads(record.read_text()).get("seconds", 0)
    return total


def main(workers: int = 2, *, again: bool = True) -> int:
    """Both runs, or with ``again=False`` the report of the last ones again (their wall times
    from the JSON, the task seconds from their folders)."""
    if again:
        runs = [_run(1), _run(workers)]
    else:
        runs = json.loads((OUT_DIR / "sweep_scaling.json").read_text())["runs"]
        for run in runs:
            run["task_s"] = round(_task_seconds(Path(run["index"]).parents[3]))
    ratio = runs[1]["wall_s"] / runs[0]["wall_s"]
    record = {"command": "tensorgates " + " ".join(SWEEP), "runs": runs,
              "ratio": round(ratio, 3)}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "sweep_scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    markdown = (f"# Sweep scaling\n\nRegenerate with `python -m benchmarks.sweep_scaling "
                f"{workers}`: `{record['command']}` from an empty cache on 1 worker, then on "
                f"{workers}.\n\n" + results_table_markdown(runs)
                + f"\nwall time on {workers} workers / on 1 worker: **{ratio:.3f}**; "
                f"perfect packing of the {workers}-worker run's task seconds would give "
                f"{runs[1]['task_s'] / workers / runs[0]['wall_s']:.3f}\n")
    (OUT_DIR / "sweep_scaling.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    counts = [arg for arg in sys.argv[1:] if arg.isdigit()]
    sys.exit(main(int(counts[0]) if counts else 2, again="--report-only" not in sys.argv))
