"""Referrals, pure: the friend's stage, the code's stage, and what they tell each other.

A referral is decided by two keyed states, each reading one log so that a replay decides the
same (DESIGN.md, "Time is data"):

- the friend's state (key merchant:friend) sees every change of the friend's orders
  (`FriendOrder`, from the order stage). It knows whether an order is the friend's first paid
  one and whether the friend was referred before. A paid first order naming a code becomes a
  `Claim` to the code's state, and the referral is `pending`;
- the code's state (key merchant:code) knows the code's advocate (`CodeCreated`, from the API)
  and the browser IPs its referrals came from. It answers each claim with a `Verdict`: an
  unknown code, a blocked one (`self_referral`, `ip_velocity`), or the advocate;
- the friend's state then completes the referral and posts the rewards as points commands
  (source `referral`, pending for the merchant's review days), or blocks it. A completed
  referral whose order is cancelled, fully refunded or refunded below the minimum is revoked:
  both rewards are reversed once (pending ones then never release).

Only the friend's first paid order (placed first; the lower id on a tie) can be a referral, so
at most one referral per friend stands; a later order naming a code is blocked (`already_referred`
when the first was referred, else `not_first_order`). Orders may arrive in any order: when an
earlier paid order turns up late, the referral on the order that only seemed first is revoked
(or, if still pending, blocked) as `not_first_order`, and the earlier order decides. Whatever
the arrival order, what stands in the end is what the rules give for the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from loyalty import ids
from loyalty.ledger import Kind, PointsChange, Source, Terms
from loyalty.referral_fraud import Block, Identity, IpReferrals, is_self_referral
from loyalty.referral_terms import ReferralTerms

REWARD_TEXT = "points.bonus.referral"
REVERSAL_TEXT = "points.reversed.referral"
MAX_ANSWERED = 16  # later referred orders a friend's state remembers having blocked
MAX_IPS = 64  # browser IPs a code's state remembers (the most recent)


class Status(StrEnum):
    PENDING = "pending"  # claimed, waiting for the code's verdict
    COMPLETED = "completed"  # rewarded
    BLOCKED = "blocked"  # never rewarded; `reason` says why
    REVOKED = "revoked"  # rewarded, then taken back; `reason` says why


class Reason(StrEnum):
    SELF_REFERRAL = Block.SELF_REFERRAL.value
    NOT_FIRST_ORDER = Block.NOT_FIRST_ORDER.value
    IP_VELOCITY = Block.IP_VELOCITY.value
    ALREADY_REFERRED = Block.ALREADY_REFERRED.value
    UNKNOWN_CODE = "unknown_code"
    BELOW_MINIMUM = "below_minimum"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


# ------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class FriendOrder:
    """One of the friend's orders as it stands now (every change of it comes again)."""

    shop: str
    merchant_id: str
    friend: int
    order_id: int
    placed_at: datetime
    at: datetime  # when the change was received: the time of what it decides
    paid: bool
    cancelled: bool
    net_subtotal: Decimal  # subtotal after discounts, less what refunds took back
    fully_refunded: bool
    code: str | None  # the referral code it names (loyalty/referral_codes.attribution)
    identity: Identity
    ip_hash: str | None
    terms: ReferralTerms
    locale: str = "en"

    @property
    def place(self) -> tuple[datetime, int]:
        """Where it stands among the friend's orders: placed first, then the lower id."""
        return (self.placed_at, self.order_id)


@dataclass(frozen=True)
class CodeCreated:
    merchant_id: str
    code: str
    advocate: Identity
    at: datetime


@dataclass(frozen=True)
class Claim:
    """The friend's state asks the code's: whose code is it, and may this order use it?"""

    merchant_id: str
    code: str
    referral_id: str
    friend: Identity
    order_id: int
    placed_at: datetime
    ip_hash: str | None


@dataclass(frozen=True)
class Verdict:
    """The code's answer to a claim: its advocate (None: no such code) or why it is blocked."""

    merchant_id: str
    friend: int
    referral_id: str
    advocate: int | None
    block: Block | None = None


@dataclass(frozen=True)
class Referral:
    """A referral as it stands: what the status store and the events say."""

    referral_id: str
    merchant_id: str
    code: str
    friend: int
    order_id: int
    status: Status
    at: datetime
    advocate: int | None = None
    reason: Reason | None = None
    advocate_points: int = 0
    friend_points: int = 0
    release_at: datetime | None = None  # rewards pending until then (review days)


def referral_id(merchant_id: str, friend: int, order_id: int) -> str:
    """One referral per friend's order naming a code."""
    return ids.event_key(merchant_id, "referral", friend, order_id)


FriendOutput = Claim | Referral | PointsChange


# ------------------------------------------------------------------------ the friend stage


@dataclass
class FriendState:
    first_paid: tuple[datetime, int] | None = None  # the earliest paid order's place
    referral: Referral | None = None  # the referral on that order, if it names a code
    claim: Claim | None = None  # while that referral waits for the code's verdict
    order: FriendOrder | None = None  # that order's latest facts, if it names a code
    answered: tuple[int, ...] = field(default=())  # later orders whose referral is decided


def apply_friend(
    state: FriendState | None, item: FriendOrder | Verdict
) -> tuple[FriendState, list[FriendOutput]]:
    s = state or FriendState()
    if isinstance(item, Verdict):
        return s, _on_verdict(s, item)
    return s, _on_order(s, item)


def _on_order(s: FriendState, o: FriendOrder) -> list[FriendOutput]:
    if not o.paid:
        return []  # an unpaid order decides nothing; its paid version comes later
    if s.first_paid is None or o.place < s.first_paid:
        # The friend's first paid order, for now: a later one's referral no longer stands.
        outputs = _supersede(s, o.at)
        s.first_paid = o.place
        return outputs + (_first_order(s, o) if o.code is not None else [])
    if o.place == s.first_paid:
        if s.order is None:
            return []
        s.order = o  # newer facts of the referred order
        completed = s.referral is not None and s.referral.status == Status.COMPLETED
        return _revoke_if_void(s, o.at) if completed else []
    return _later_order(s, o) if o.code is not None else []


def _first_order(s: FriendState, o: FriendOrder) -> list[FriendOutput]:
    """The friend's first paid order names a code: ask the code, unless it cannot qualify."""
    assert o.code is not None
    s.order = o
    rid = referral_id(o.merchant_id, o.friend, o.order_id)
    void = _void_reason(o)
    if void is not None:
        return [_decide(s, o, rid, Status.BLOCKED, void)]
    s.claim = Claim(o.merchant_id, o.code, rid, o.identity, o.order_id, o.placed_at, o.ip_hash)
    s.referral = _record(o, rid, Status.PENDING)
    return [s.claim, s.referral]


def _supersede(s: FriendState, at: datetime) -> list[FriendOutput]:
    """An earlier paid order arrived: the referral on the order that seemed first is void
    (revoked if it was rewarded), and that order is from now on a later one."""
    referral, order = s.referral, s.order
    s.referral, s.claim, s.order = None, None, None
    if referral is None or order is None:
        return []
    s.answered = (*s.answered, order.order_id)[-MAX_ANSWERED:]
    if referral.status == Status.COMPLETED:
        return _revoke(referral, order, Reason.NOT_FIRST_ORDER, at)
    if referral.status == Status.PENDING:
        # The earlier order may have been received before the referred one (it sat on
        # another partition): a change is never dated before the one it follows, or the
        # status store, which keeps the latest, would keep the referral as it was.
        at = max(at, referral.at)
        return [replace(referral, status=Status.BLOCKED, reason=Reason.NOT_FIRST_ORDER, at=at)]
    return []


def _later_order(s: FriendState, o: FriendOrder) -> list[FriendOutput]:
    """A paid order after the first names a code: never a referral, said once."""
    if o.order_id in s.answered:
        return []
    s.answered = (*s.answered, o.order_id)[-MAX_ANSWERED:]
    referred = s.referral is not None and s.referral.status != Status.BLOCKED
    reason = Reason.ALREADY_REFERRED if referred else Reason.NOT_FIRST_ORDER
    rid = referral_id(o.merchant_id, o.friend, o.order_id)
    return [_record(o, rid, Status.BLOCKED, reason=reason)]


def _on_verdict(s: FriendState, v: Verdict) -> list[FriendOutput]:
    claim, o = s.claim, s.order
    if claim is None or claim.referral_id != v.referral_id or o is None:
        return []  # answered before (a replayed verdict), or its order is no longer first
    s.claim = None
    if v.advocate is None:
        return [_decide(s, o, v.referral_id, Status.BLOCKED, Reason.UNKNOWN_CODE)]
    if v.block is not None:
        return [_decide(s, o, v.referral_id, Status.BLOCKED, Reason(v.block.value), v.advocate)]
    void = _void_reason(o)  # the order may have changed while the code was asked
    if void is not None:
        return [_decide(s, o, v.referral_id, Status.BLOCKED, void, v.advocate)]
    return _complete(s, o, v)


def _complete(s: FriendState, o: FriendOrder, v: Verdict) -> list[FriendOutput]:
    assert v.advocate is not None
    days = o.terms.review_days
    release_at = o.at + timedelta(days=days) if days else None
    s.referral = _record(
        o,
        v.referral_id,
        Status.COMPLETED,
        advocate=v.advocate,
        advocate_points=o.terms.advocate_points,
        friend_points=o.terms.friend_points,
        release_at=release_at,
    )
    rewards = [
        _reward(o, v.referral_id, "advocate", v.advocate, o.terms.advocate_points, release_at),
        _reward(o, v.referral_id, "friend", o.friend, o.terms.friend_points, release_at),
    ]
    return [s.referral, *(r for r in rewards if r.points > 0)]


def _revoke_if_void(s: FriendState, at: datetime) -> list[FriendOutput]:
    referral, o = s.referral, s.order
    assert referral is not None
    assert o is not None
    reason = _void_reason(o)
    if reason is None:
        return []
    outputs = _revoke(referral, o, reason, at)
    revoked = outputs[0]
    assert isinstance(revoked, Referral)
    s.referral = revoked
    return outputs


def _revoke(referral: Referral, o: FriendOrder, reason: Reason, at: datetime) -> list[FriendOutput]:
    """The referral revoked, and both rewards reversed (pending ones then never release)."""
    at = max(at, referral.at)  # see _supersede
    revoked = replace(referral, status=Status.REVOKED, reason=reason, at=at)
    reversals = [
        _reversal(o, referral, "advocate", referral.advocate, referral.advocate_points, at),
        _reversal(o, referral, "friend", referral.friend, referral.friend_points, at),
    ]
    return [revoked, *(r for r in reversals if r is not None)]


def _void_reason(o: FriendOrder) -> Reason | None:
    """Why the referred order does not qualify (or no longer does), if it does not."""
    if o.cancelled:
        return Reason.CANCELLED
    if o.fully_refunded:
        return Reason.REFUNDED
    if o.net_subtotal < o.terms.min_subtotal:
        return Reason.BELOW_MINIMUM
    return None


def _decide(
    s: FriendState,
    o: FriendOrder,
    rid: str,
    status: Status,
    reason: Reason,
    advocate: int | None = None,
) -> Referral:
    """The friend's referral, decided without rewards: it counts as the friend's one."""
    s.referral = _record(o, rid, status, reason=reason, advocate=advocate)
    return s.referral


def _record(
    o: FriendOrder,
    rid: str,
    status: Status,
    *,
    reason: Reason | None = None,
    advocate: int | None = None,
    advocate_points: int = 0,
    friend_points: int = 0,
    release_at: datetime | None = None,
) -> Referral:
    assert o.code is not None
    return Referral(
        referral_id=rid,
        merchant_id=o.merchant_id,
        code=o.code,
        friend=o.friend,
        order_id=o.order_id,
        status=status,
        at=o.at,
        advocate=advocate,
        reason=reason,
        advocate_points=advocate_points,
        friend_points=friend_points,
        release_at=release_at,
    )


def _reward(
    o: FriendOrder, rid: str, role: str, customer: int, points: int, release_at: datetime | None
) -> PointsChange:
    return _change(o, f"{rid}:{role}", customer, Kind.BONUS, points, o.at, release_at)


def _reversal(
    o: FriendOrder, referral: Referral, role: str, customer: int | None, points: int, at: datetime
) -> PointsChange | None:
    if customer is None or points <= 0:
        return None
    return _change(o, f"{referral.referral_id}:{role}", customer, Kind.REVERSE, points, at)


def _change(
    o: FriendOrder,
    source_id: str,
    customer: int,
    kind: Kind,
    points: int,
    at: datetime,
    release_at: datetime | None = None,
) -> PointsChange:
    """A reward (`source_id` names the referral and whose reward) or its reversal."""
    return PointsChange(
        shop=o.shop,
        customer=customer,
        source=Source.REFERRAL,
        source_id=source_id,
        kind=kind,
        points=points,
        text_key=REVERSAL_TEXT if kind == Kind.REVERSE else REWARD_TEXT,
        locale=o.locale,
        at=at,
        terms=Terms(release_at=release_at),
    )


# -------------------------------------------------------------------------- the code stage


@dataclass
class CodeState:
    advocate: Identity | None = None
    ips: dict[str, IpReferrals] = field(default_factory=dict)


def apply_code(
    state: CodeState | None, item: CodeCreated | Claim
) -> tuple[CodeState | None, list[Verdict]]:
    if isinstance(item, CodeCreated):
        s = state or CodeState()
        s.advocate = _learned(s.advocate, item.advocate)
        return s, []
    if state is None or state.advocate is None:
        # No such code (yet): nothing is kept for it, so guessed codes cost no state.
        return state, [Verdict(item.merchant_id, item.friend.customer, item.referral_id, None)]
    return state, [_verdict(state, state.advocate, item)]


def _learned(known: Identity | None, told: Identity) -> Identity:
    """The advocate as known so far, completed by what a later announcement says (the API
    announces the code on every request, with the advocate's hashes as Core then knows them).
    A code never changes hands: an announcement naming another customer is ignored."""
    if known is None:
        return told
    if known.customer != told.customer:
        return known
    return Identity(
        known.customer,
        known.email_hash or told.email_hash,
        known.name_hash or told.name_hash,
        known.address_hashes | told.address_hashes,
    )


def _verdict(s: CodeState, advocate: Identity, claim: Claim) -> Verdict:
    block: Block | None = None
    if is_self_referral(advocate, claim.friend):
        block = Block.SELF_REFERRAL
    elif claim.ip_hash is not None:
        seen = s.ips.pop(claim.ip_hash, IpReferrals())
        if seen.blocks(claim.placed_at, claim.referral_id):
            block = Block.IP_VELOCITY
        s.ips[claim.ip_hash] = seen.with_referral(claim.placed_at, claim.referral_id)
        while len(s.ips) > MAX_IPS:
            del s.ips[next(iter(s.ips))]
    friend = claim.friend.customer
    return Verdict(claim.merchant_id, friend, claim.referral_id, advocate.customer, block)
