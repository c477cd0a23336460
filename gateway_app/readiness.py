"""Readiness as a set of named checks: the node is ready only when every check passes.

The data plane registers its own checks (listeners bound, backing Kafka reachable, broker ids in
range, not draining); the cluster layer adds one for membership with `add`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str = ""


Check = Callable[[], CheckResult]


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} already registered")
        self._checks[name] = check

    def evaluate(self) -> dict[str, CheckResult]:
        results: dict[str, CheckResult] = {}
        for name, check in self._checks.items():
            try:
                results[name] = check()
            except Exception as error:  # a broken check means not ready, never a crashed endpoint
                results[name] = CheckResult(False, f"check failed: {error!r}")
        return results

    def ready(self) -> bool:
        return all(result.ok for result in self.evaluate().values())


class Flag:
    """A settable boolean check, e.g. 'listeners bound' or 'not draining'."""

    def __init__(self, ok: bool, detail_ok: str, detail_not_ok: str) -> None:
        self.ok = ok
        self._details = {True: detail_ok, False: detail_not_ok}

    def __call__(self) -> CheckResult:
        return CheckResult(self.ok, self._details[self.ok])
