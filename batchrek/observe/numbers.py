"""How numbers are shown to people: one precision rule for the summary, the verdict,
the live display, the log lines and the report.

Three significant digits below 1,000 (``52.4``, ``0.0523``, ``718``), whole numbers
with thousands separators above (``1,106``); counts always whole (``4,000``). A
measured value never carries digits the measurement does not have (``52.355 ms``
was the old look), and a value a person reads twice in a row keeps its width
(``71.8/s``, not ``71.8149/s``).

``round3`` is the stored form of a shown value: the verdict keeps the numbers it
prints in ``verdict.evidence`` of the metrics JSON with exactly the digits shown, so
every number a user reads can be found there.
"""

from __future__ import annotations

import math

__all__ = ["fmt", "fmt_count", "fmt_fixed", "fmt_percent", "round3"]


def round3(x: float) -> float:
    """``x`` at three significant digits (whole above 1,000): the shown value."""
    if not math.isfinite(x) or x == 0:
        return 0.0 if x == 0 else x
    if abs(x) >= 1000:
        return float(round(x))
    decimals = 2 - math.floor(math.log10(abs(x)))
    return round(x, decimals)


def fmt(x: float | None) -> str:
    """Three significant digits, trailing zeros dropped: ``52.4``, ``4``, ``1,106``."""
    if x is None or not math.isfinite(x):
        return "?"
    r = round3(x)
    if abs(r) >= 1000 or r == int(r):
        return f"{r:,.0f}"
    text = f"{r:.{_decimals(r)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_fixed(x: float | None) -> str:
    """Three significant digits, trailing zeros kept, for values shown again and again
    (the live display): ``7.10``, ``71.8``, ``718``, ``1,234``."""
    if x is None or not math.isfinite(x):
        return "?"
    r = round3(x)
    if abs(r) >= 100 or r == 0:
        return f"{r:,.0f}"
    return f"{r:.{_decimals(r)}f}"


def fmt_count(n: int | float | None) -> str:
    """A count: ``4,000``."""
    if n is None:
        return "?"
    return f"{round(n):,}"


def fmt_percent(share: float) -> str:
    """A share of 1 as a percentage, three significant digits: ``0.57 %``, ``12.5 %``."""
    return f"{fmt(share * 100)} %"


def _decimals(r: float) -> int:
    return max(0, 2 - math.floor(math.log10(abs(r))))
