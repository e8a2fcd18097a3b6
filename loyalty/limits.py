"""The bounds every number and text meets where it enters the system.

Everything downstream stores and encodes these values as signed 64-bit integers (BSON, Avro
`long`) and UTF-8 text, so a value outside them must be refused where it enters, with a reason,
never discovered later by an encoder in the middle of a flow.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1
"""Shopify ids are positive and 64-bit; MongoDB and Avro hold signed 64-bit integers."""

MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)

MAX_POINTS = 10**12
"""Points one change may move (an earn, a reversal, a redemption). A trillion points is far
beyond any real order; the bound keeps every balance within int64 for millions of changes."""

MONEY_INTEGER_DIGITS = 15
MONEY_DECIMAL_PLACES = 8
"""A money amount: at most 15 digits before the point (a quadrillion) and 8 after it."""

MAX_RATE = 10_000
RATE_DECIMAL_PLACES = 4
"""A merchant's points per currency unit: 0..10,000 with at most 4 decimal places."""

MAX_JSON_DEPTH = 32
"""Nesting of arrays and objects in a body; Shopify's order bodies nest about 5 deep."""

MAX_JSON_INTEGER_DIGITS = 20
"""Digits of a JSON integer: int64 has 19. Longer numbers are refused while parsing, before
Python's own limit (4,300 digits) raises a ValueError nobody expects."""

MAX_TEXT = 255
"""Length of the free-text fields kept with a redemption (idempotency keys)."""

MAX_REWARD_ID = 200
"""Length of a redemption's reward id."""
