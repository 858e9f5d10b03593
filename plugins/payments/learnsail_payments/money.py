"""Money: Decimal yuan with two places, end to end.  Floats appear only at
the JSON edge (000 writes prices as numbers)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: the least an order may cost: the platforms refuse to charge 0
MINIMUM = CENT


def cents(value: Any) -> Decimal:
    """``value`` (Decimal, int or str; never a float) as yuan with two places."""
    if isinstance(value, float):
        raise TypeError("money is never a float: pass a Decimal or a string")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def number(value: Decimal | None) -> float | None:
    """The JSON number for an amount (the edge: responses only)."""
    return None if value is None else float(value)
