"""The work one call may cost (resources, bytes, time), and the error for a call over it.

A call over budget is answered 422 ``work_budget_exceeded`` (api/hooks.py) naming the budget,
long before the server's own call timeout: the EHR learns what was too much, and a worker is
never tied up by one chart for half a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class WorkBudgetExceeded(Exception):
    """``what`` is a fixed text naming the budget (safe to log and to send)."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(what)


@dataclass(frozen=True, slots=True)
class WorkBudget:
    max_resources: int = 20_000  # resources in one call, prefetched and fetched together
    max_seconds: float = 20.0  # evaluation time, checked between the pipeline's stages

    def start(self) -> Deadline:
        return Deadline(self, time.monotonic() + self.max_seconds)


@dataclass(frozen=True, slots=True)
class Deadline:
    budget: WorkBudget
    at: float

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise WorkBudgetExceeded(f"the call needed more than {self.budget.max_seconds:g} s of work")

    def check_resources(self, count: int) -> None:
        if count > self.budget.max_resources:
            raise WorkBudgetExceeded(f"the call carries {count} resources; at most {self.budget.max_resources} are read")
