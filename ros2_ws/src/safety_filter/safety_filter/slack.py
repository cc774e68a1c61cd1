"""Constraint slack: the one place a filter keeps how far each limit may still be violated.

A filter synced where a limit is already violated (a joint inside its margin, the TCP outside
the box) cannot refuse every output, so the violation present then becomes that constraint's
*slack*: outputs may violate it by no more, and the slack only shrinks as the filter moves the
arm back inside (see the filter module's docstring). Each filter names its constraints once;
``reset`` (at sync and resync), ``tighten`` (after every accepted step) and ``exceeded`` (every
check) then work on all of them, so no constraint's slack can be forgotten in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Numerical tolerance of every comparison against a slack.
TOL = 1e-9


class Slack:
    """Per-constraint slack (>= 0) for named violation vectors (positive = violated)."""

    def __init__(self, sizes: Mapping[str, int]):
        self._sizes = dict(sizes)
        self._slack = {k: np.zeros(n) for k, n in self._sizes.items()}

    def _checked(self, violations: Mapping[str, np.ndarray | float]) -> dict[str, np.ndarray]:
        if set(violations) != set(self._sizes):
            raise KeyError(f"violations for {sorted(violations)}, constraints are {sorted(self._sizes)}")
        return {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in violations.items()}

    def reset(self, violations: Mapping[str, np.ndarray | float]) -> None:
        """The violations present now become the slack (at sync and at the start/end of a resync)."""
        self._slack = {k: np.maximum(v, 0.0) for k, v in self._checked(violations).items()}

    def tighten(self, violations: Mapping[str, np.ndarray | float]) -> None:
        """After an accepted step: a slack only ever shrinks to what is still violated."""
        for k, v in self._checked(violations).items():
            self._slack[k] = np.minimum(self._slack[k], np.maximum(v, 0.0))

    def exceeded(self, violations: Mapping[str, np.ndarray | float], name: str) -> bool:
        """Whether constraint ``name`` is violated by more than its slack."""
        v = np.atleast_1d(np.asarray(violations[name], dtype=np.float64))
        return bool(np.any(v > self._slack[name] + TOL))

    def excess(self, violations: Mapping[str, np.ndarray | float], name: str) -> np.ndarray:
        """How far beyond its slack each entry of ``name`` is (negative = within)."""
        return np.atleast_1d(np.asarray(violations[name], dtype=np.float64)) - self._slack[name]

    def value(self, name: str) -> np.ndarray:
        return self._slack[name].copy()
