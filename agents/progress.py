"""The progress bar of a library learner's run: what ends the run is what it counts.

A run budgeted in minutes (``--max-minutes``) counts minutes, with the env steps beside them; one budgeted in env
steps alone counts steps. A bar of steps against a step budget the clock will cut short would show an ETA of the
wrong run (82 hours against a placeholder ``--total-timesteps``, before this module).
"""

from __future__ import annotations

import math
import time

from tqdm.auto import tqdm


class BudgetBar:
    """Minutes against ``budget_seconds`` when it is finite, else env steps against ``total_steps``.

    :param total_steps: the step budget (``None`` or ``inf``: none)
    :param budget_seconds: the time budget, earlier sessions included (``inf``: none)
    :param steps: env steps already done (a resumed run)
    :param seconds: training seconds already spent (a resumed run)
    """

    def __init__(self, total_steps: float | None, budget_seconds: float, steps: int = 0, seconds: float = 0.0):
        self.minutes = not math.isinf(budget_seconds)
        if self.minutes:
            fmt = "{l_bar}{bar}| {n:.2f}/{total:g} min [{elapsed}{postfix}]"
            self.bar = tqdm(total=budget_seconds / 60, bar_format=fmt, dynamic_ncols=True)
            self.budget = budget_seconds
        else:
            total = None if total_steps is None or math.isinf(total_steps) else total_steps
            self.bar = tqdm(total=total, unit=" steps", unit_scale=True, dynamic_ncols=True)
        self.shown = -math.inf
        self.update(steps, seconds)

    def update(self, steps: int, seconds: float) -> None:
        """The run has done ``steps`` env steps in ``seconds`` training seconds (earlier sessions included)."""
        if self.minutes:  # set, not added: sums of small steps would drift past the total
            self.bar.n = min(seconds, self.budget) / 60
            self.bar.set_postfix_str(f"{steps:,} env steps", refresh=False)
        else:
            self.bar.n = steps if self.bar.total is None else min(steps, self.bar.total)
        if time.monotonic() - self.shown >= 0.5:  # at most two redraws a second
            self.bar.refresh()
            self.shown = time.monotonic()

    def close(self) -> None:
        self.bar.close()
