"""The referrals flow's states as rows: plain tuples of ints, strings and None.

As with the points and tiers flows' states (loyalty/state_rows.py), the row is what a key holds
and what its recovery snapshot is: it names no class, so renaming or moving one never breaks a
recovery store, and a row starts with its format version, so a row of another version is
refused with a clear error instead of being misread. Times are whole microseconds since the
epoch, amounts their Decimal text, enums their values.
"""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from loyalty.referral_fraud import Identity, IpReferrals
from loyalty.referral_orders import Extras, ReferralOrder
from loyalty.referral_terms import ReferralTerms
from loyalty.referrals import (
    Claim,
    CodeState,
    FriendOrder,
    FriendState,
    Reason,
    Referral,
    Status,
)
from loyalty.state_rows import RowVersionError, micros_of, time_of

ORDER_ROW_VERSION = 1
FRIEND_ROW_VERSION = 1
CODE_ROW_VERSION = 1

Row = tuple[Any, ...]


def _versioned(row: object, version: int, what: str) -> Row:
    if not isinstance(row, tuple) or not row or row[0] != version:
        raise RowVersionError(
            f"not a version-{version} referral {what} row: state saved by another version of "
            "LoyalNest (delete the referrals flow's recovery store and replay it)"
        )
    return row[1:]


# ------------------------------------------------------------------------------ the parts


def _micros(at: datetime | None) -> int | None:
    return None if at is None else micros_of(at)


def _time(micros: int | None) -> datetime | None:
    return None if micros is None else time_of(micros)


def _identity_row(i: Identity) -> Row:
    return (i.customer, i.email_hash, i.name_hash, tuple(sorted(i.address_hashes)))


def _identity(row: Row) -> Identity:
    customer, email_hash, name_hash, addresses = row
    return Identity(customer, email_hash, name_hash, frozenset(addresses))


def _terms_row(t: ReferralTerms) -> Row:
    return (t.advocate_points, t.friend_points, str(t.min_subtotal), t.review_days)


def _terms(row: Row) -> ReferralTerms:
    advocate_points, friend_points, min_subtotal, review_days = row
    return ReferralTerms(advocate_points, friend_points, Decimal(min_subtotal), review_days)


# ------------------------------------------------------------------------- the order stage


def order_row(o: ReferralOrder) -> Row:
    e = o.extras
    return (
        ORDER_ROW_VERSION,
        o.friend,
        _micros(o.placed_at),
        None if o.subtotal is None else str(o.subtotal),
        o.paid,
        o.cancelled,
        o.test,
        str(o.refunded),
        o.refund_ids,
        (e.code, e.email_hash, e.name_hash, tuple(sorted(e.address_hashes)), e.ip_hash),
        _terms_row(o.terms),
        o.locale,
    )


def order_from_row(row: object) -> ReferralOrder:
    fields = _versioned(row, ORDER_ROW_VERSION, "order")
    friend, placed_at, subtotal, paid, cancelled, test, refunded, refund_ids = fields[:8]
    (code, email_hash, name_hash, addresses, ip_hash), terms, locale = fields[8:]
    return ReferralOrder(
        friend=friend,
        placed_at=_time(placed_at),
        subtotal=None if subtotal is None else Decimal(subtotal),
        paid=paid,
        cancelled=cancelled,
        test=test,
        refunded=Decimal(refunded),
        refund_ids=tuple(refund_ids),
        extras=Extras(code, email_hash, name_hash, frozenset(addresses), ip_hash),
        terms=_terms(terms),
        locale=sys.intern(locale),
    )


# ------------------------------------------------------------------------ the friend stage


def _referral_row(r: Referral) -> Row:
    return (
        r.referral_id,
        r.merchant_id,
        r.code,
        r.friend,
        r.order_id,
        r.status.value,
        micros_of(r.at),
        r.advocate,
        None if r.reason is None else r.reason.value,
        r.advocate_points,
        r.friend_points,
        _micros(r.release_at),
    )


def _referral(row: Row) -> Referral:
    (referral_id, merchant_id, code, friend, order_id, status, at) = row[:7]
    advocate, reason, advocate_points, friend_points, release_at = row[7:]
    return Referral(
        referral_id=referral_id,
        merchant_id=sys.intern(merchant_id),
        code=code,
        friend=friend,
        order_id=order_id,
        status=Status(status),
        at=time_of(at),
        advocate=advocate,
        reason=None if reason is None else Reason(reason),
        advocate_points=advocate_points,
        friend_points=friend_points,
        release_at=_time(release_at),
    )


def _claim_row(c: Claim) -> Row:
    return (
        c.merchant_id,
        c.code,
        c.referral_id,
        _identity_row(c.friend),
        c.order_id,
        micros_of(c.placed_at),
        c.ip_hash,
    )


def _claim(row: Row) -> Claim:
    merchant_id, code, referral_id, friend, order_id, placed_at, ip_hash = row
    return Claim(
        sys.intern(merchant_id),
        code,
        referral_id,
        _identity(friend),
        order_id,
        time_of(placed_at),
        ip_hash,
    )


def _friend_order_row(o: FriendOrder) -> Row:
    return (
        o.shop,
        o.merchant_id,
        o.friend,
        o.order_id,
        micros_of(o.placed_at),
        micros_of(o.at),
        o.paid,
        o.cancelled,
        str(o.net_subtotal),
        o.fully_refunded,
        o.code,
        _identity_row(o.identity),
        o.ip_hash,
        _terms_row(o.terms),
        o.locale,
    )


def _friend_order(row: Row) -> FriendOrder:
    shop, merchant_id, friend, order_id, placed_at, at, paid, cancelled = row[:8]
    net_subtotal, fully_refunded, code, identity, ip_hash, terms, locale = row[8:]
    return FriendOrder(
        shop=sys.intern(shop),
        merchant_id=sys.intern(merchant_id),
        friend=friend,
        order_id=order_id,
        placed_at=time_of(placed_at),
        at=time_of(at),
        paid=paid,
        cancelled=cancelled,
        net_subtotal=Decimal(net_subtotal),
        fully_refunded=fully_refunded,
        code=code,
        identity=_identity(identity),
        ip_hash=ip_hash,
        terms=_terms(terms),
        locale=sys.intern(locale),
    )


def friend_row(s: FriendState) -> Row:
    return (
        FRIEND_ROW_VERSION,
        None if s.first_paid is None else (micros_of(s.first_paid[0]), s.first_paid[1]),
        None if s.referral is None else _referral_row(s.referral),
        None if s.claim is None else _claim_row(s.claim),
        None if s.order is None else _friend_order_row(s.order),
        s.answered,
    )


def friend_from_row(row: object) -> FriendState:
    first_paid, referral, claim, order, answered = _versioned(row, FRIEND_ROW_VERSION, "friend")
    return FriendState(
        first_paid=None if first_paid is None else (time_of(first_paid[0]), first_paid[1]),
        referral=None if referral is None else _referral(referral),
        claim=None if claim is None else _claim(claim),
        order=None if order is None else _friend_order(order),
        answered=tuple(answered),
    )


# -------------------------------------------------------------------------- the code stage


def code_row(s: CodeState) -> Row:
    return (
        CODE_ROW_VERSION,
        None if s.advocate is None else _identity_row(s.advocate),
        tuple(
            (ip, tuple(micros_of(t) for t in seen.times), seen.referral_ids)
            for ip, seen in s.ips.items()  # oldest first, as the state keeps them
        ),
    )


def code_from_row(row: object) -> CodeState:
    advocate, ips = _versioned(row, CODE_ROW_VERSION, "code")
    return CodeState(
        advocate=None if advocate is None else _identity(advocate),
        ips={
            ip: IpReferrals(tuple(time_of(t) for t in times), tuple(referral_ids))
            for ip, times, referral_ids in ips
        },
    )
