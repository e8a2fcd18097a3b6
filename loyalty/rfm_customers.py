"""The RFM customer stage, pure: a customer's window, and their scores as last announced.

Keyed by shop and customer. Order changes move the window; a tick moves its end to the
merchant's as-of day and brings the merchant's current scales, with which the customer is
scored. Scores are announced (`RfmUpdate`, the `rfm.updated` event) only when they or the
segment change. Between ticks a customer's values change at once but their scores wait for the
next tick: the rescoring job ticks every customer whose stored scores no longer match their
values under the current scales, so scores follow within one of its rounds (the API reads
scores through the current scales anyway).

Every change of values is reported (`values_change`) for the merchant's histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loyalty.rfm import PROSPECT, Scales, Scores, Segment, Values
from loyalty.rfm_merchants import MerchantPicture
from loyalty.rfm_orders import OrderChange
from loyalty.rfm_window import CustomerWindow


@dataclass(frozen=True, slots=True)
class Tick:
    """The merchant's as-of day and its scales (version `version`) reach one customer."""

    as_of: int
    scales: Scales
    version: int


@dataclass(frozen=True, slots=True)
class RfmUpdate:
    """Scores or segment changed: what `rfm.updated` says. `scores` None: a prospect."""

    values: Values
    scores: Scores | None
    previous_segment: Segment | None  # None: the customer's first update
    as_of: int
    sequence: int  # the customer's how-many-th update: with the customer, the event's identity

    @property
    def segment(self) -> Segment:
        return segment_of(self.scores)


@dataclass(frozen=True, slots=True)
class CustomerOutcome:
    values_change: tuple[Values | None, Values] | None  # (None: a customer new to the merchant)
    update: RfmUpdate | None


@dataclass
class RfmCustomer:
    window: CustomerWindow = field(default_factory=CustomerWindow)
    scores: Scores | None = None  # as last announced; None: a prospect or never scored
    segment: Segment | None = None  # as last announced; None: nothing announced yet
    version: int = 0  # of the picture last scored with (for the record: see apply_tick)
    updates: int = 0
    seq: int = 0  # records applied: orders the customer's stored documents

    def values(self) -> Values:
        return self.window.values()

    def next_exit(self, lookback: int) -> int | None:
        return self.window.next_exit(lookback)


def apply_order_change(
    state: RfmCustomer | None, change: OrderChange, lookback: int
) -> tuple[RfmCustomer, CustomerOutcome]:
    customer = state or RfmCustomer()
    before = None if state is None else customer.values()
    customer.seq += 1
    customer.window.change(change.day, change.before, change.after, lookback)
    after = customer.values()
    update = None
    if after == PROSPECT:
        # A prospect needs no scales: it is said at once.
        update = _announce(customer, after, None, customer.window.as_of or change.day)
    return customer, CustomerOutcome(_moved(before, after), update)


def apply_tick(
    state: RfmCustomer | None, tick: Tick, lookback: int
) -> tuple[RfmCustomer, CustomerOutcome]:
    customer = state or RfmCustomer()
    before = None if state is None else customer.values()
    customer.seq += 1
    customer.window.advance(tick.as_of, lookback)
    after = customer.values()
    # The latest tick decides, whatever its picture's version: one rounds job sends a
    # customer's ticks in order, and a replay reads them in log order, while picture versions
    # restart with a rebuilt merchant state. The rounds' staleness query, not versions, is
    # what brings every customer to the current picture.
    customer.version = tick.version
    update = _announce(customer, after, tick.scales.scores(after), tick.as_of)
    return customer, CustomerOutcome(_moved(before, after), update)


def _moved(before: Values | None, after: Values) -> tuple[Values | None, Values] | None:
    return None if before == after else (before, after)


def _announce(
    customer: RfmCustomer, values: Values, scores: Scores | None, as_of: int
) -> RfmUpdate | None:
    if customer.segment is not None and scores == customer.scores:
        return None
    previous = customer.segment
    customer.scores, customer.segment = scores, segment_of(scores)
    customer.updates += 1
    return RfmUpdate(values, scores, previous, as_of, customer.updates)


def segment_of(scores: Scores | None) -> Segment:
    return Segment.PROSPECTS if scores is None else scores.segment


def needs_tick(customer: RfmCustomer, lookback: int, picture: MerchantPicture) -> bool:
    """Whether the rescoring job must tick this customer for `picture`: a day of theirs has
    left the window, or their announced scores are not what the picture's scales give."""
    exit_day = customer.next_exit(lookback)
    if exit_day is not None and exit_day <= picture.as_of:
        return True
    if customer.segment is None:
        return True
    return picture.scales.scores(customer.values()) != customer.scores
