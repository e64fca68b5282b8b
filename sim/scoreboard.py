"""In-order scoreboard: expected values come from the golden model, actual ones from the DUT."""
from __future__ import annotations

import numpy as np

__all__ = ["Scoreboard"]


class Scoreboard:
    """Compares results in order with zero tolerance and keeps a readable log of mismatches."""

    def __init__(self, log):
        self.log = log
        self.expected: list[tuple[str, np.ndarray]] = []
        self.checked = 0
        self.failures: list[str] = []

    def expect(self, name: str, value: np.ndarray) -> None:
        self.expected.append((name, np.asarray(value)))

    def check(self, actual: np.ndarray) -> None:
        if not self.expected:
            self.failures.append("the DUT produced a result nobody expected")
            return
        name, want = self.expected.pop(0)
        actual = np.asarray(actual)
        self.checked += 1
        if actual.shape != want.shape:
            self.failures.append(f"{name}: shape {actual.shape}, expected {want.shape}")
        elif not np.array_equal(actual, want):
            bad = np.argwhere(actual != want)
            first = tuple(int(x) for x in bad[0])
            self.failures.append(f"{name}: {len(bad)} of {want.size} elements differ; first at "
                                 f"{first}: got {actual[first]}, expected {want[first]}")
        else:
            self.log.info("%s: %d elements match the golden model", name, want.size)

    def finish(self) -> None:
        """Raise ``AssertionError`` on any mismatch or on results that never came."""
        for name, _ in self.expected:
            self.failures.append(f"{name}: no result from the DUT")
        assert not self.failures, "; ".join(self.failures)
