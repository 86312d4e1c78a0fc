"""Exact arithmetic helpers: rationals inside, Decimals at the edges.

Rating works on :class:`fractions.Fraction` so that nothing is rounded before the single,
stated rounding of each line amount (docs/billing.md, "Rounding"). A display unit such as
the hour (3600 s) or the square foot (92 903.04 mm²) does not divide a power of ten, so a
Decimal quantity would already be rounded; a Fraction never is.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

DISPLAY_PLACES = 6
"""Places shown for a non-money value that has no finite decimal form (e.g. 1 s in hours)."""


def round_half_up(value: Fraction, places: int) -> Decimal:
    """``value`` rounded to ``places`` decimals, halves away from zero, as an exact Decimal."""
    scaled = abs(value) * 10**places
    digits = math.floor(scaled + Fraction(1, 2))
    sign = "-" if value < 0 and digits else ""
    # Built from a string so the result is exact whatever the decimal context's precision.
    return Decimal(f"{sign}{digits}E-{places}")


def to_decimal(value: Fraction) -> Decimal:
    """``value`` as an exact Decimal when it has a finite decimal form, else to 6 places.

    Used for quantities and tier subtotals shown on a statement; never for what is priced.
    """
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return round_half_up(value, DISPLAY_PLACES)
    places = max(twos, fives)
    return round_half_up(value, places)


def round_to_int(value: Fraction) -> int:
    """Nearest integer, halves up (values here are never negative)."""
    return math.floor(value + Fraction(1, 2))
