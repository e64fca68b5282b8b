"""How a sweep's wall time scales with Dask workers: the same sweep, from an empty cache, on
1 worker and then on N, in one run (``python -m benchmarks.sweep_scaling [N]``).

Each run gets a fresh folder under ``build/sweep_scaling/`` (its own ``build/`` and cache), so
neither reuses the other's records. Writes ``build/bench/sweep_scaling.{json,md}``.
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
            "summary": result.stdout.strip().splitlines()[-1],
            "index": str(folder / "build" / "sweep" / "scaling" / "index.md")}


def main(workers: int = 2) -> int:
    runs = [_run(1), _run(workers)]
    ratio = runs[1]["wall_s"] / runs[0]["wall_s"]
    record = {"command": "tensorgates " + " ".join(SWEEP), "runs": runs,
              "ratio": round(ratio, 3)}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "sweep_scaling.json").write_text(json.dumps(record, indent=2) + "\n")
    markdown = (f"# Sweep scaling\n\nRegenerate with `python -m benchmarks.sweep_scaling "
                f"{workers}`: `{record['command']}` from an empty cache on 1 worker, then on "
                f"{workers}.\n\n" + results_table_markdown(runs)
                + f"\nwall time on {workers} workers / on 1 worker: **{ratio:.3f}**\n")
    (OUT_DIR / "sweep_scaling.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
