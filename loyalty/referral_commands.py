"""The referrals flow's logs, as JSON records kept forever (each of its keyed states reads one):

`referral.commands`, keyed merchant:code, read by the code's state:
- `referral.code`: a code given to an advocate (the API writes it each time the code is asked
  for; the code's state keeps the first). It carries the advocate's identity as hashes (the
  customers table's, when the advocate's orders have given them), for the self-referral check;
- `referral.claim`: a friend's first paid order naming the code (the friend's state asks).

`referral.friends`, keyed merchant:friend, read by the friend's state:
- `referral.order`: one of the friend's orders as it stands (the order stage tells it);
- `referral.verdict`: the code's answer to a claim.
"""

from __future__ import annotations

import json
from typing import Any

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.pii import is_hash
from loyalty.referral_codes import parse_code
from loyalty.referral_fraud import Block, Identity
from loyalty.referral_terms import ReferralTerms, min_subtotal, referral_points, review_days
from loyalty.referrals import Claim, CodeCreated, FriendOrder, Verdict

CODE_CREATED = "referral.code"
CLAIM = "referral.claim"
FRIEND_ORDER = "referral.order"
VERDICT = "referral.verdict"
MAX_ADDRESSES = 8
_BLOCKS = frozenset(b.value for b in Block)


def referral_key(merchant_id: str, code: str) -> bytes:
    return f"{merchant_id}:{code}".encode()


def friend_key(merchant_id: str, friend: int) -> bytes:
    return f"{merchant_id}:{friend}".encode()


def encode_code_created(created: CodeCreated) -> bytes:
    return _dump(
        {
            "type": CODE_CREATED,
            "merchant_id": created.merchant_id,
            "code": created.code,
            **_identity(created.advocate, "advocate"),
            "at": created.at.isoformat(),
        }
    )


def encode_claim(claim: Claim) -> bytes:
    return _dump(
        {
            "type": CLAIM,
            "merchant_id": claim.merchant_id,
            "code": claim.code,
            "referral_id": claim.referral_id,
            **_identity(claim.friend, "friend"),
            "order_id": claim.order_id,
            "placed_at": claim.placed_at.isoformat(),
            "ip_hash": claim.ip_hash,
        }
    )


def encode_friend_order(order: FriendOrder) -> bytes:
    terms = order.terms
    return _dump(
        {
            "type": FRIEND_ORDER,
            "shop": order.shop,
            "merchant_id": order.merchant_id,
            **_identity(order.identity, "friend"),
            "order_id": order.order_id,
            "placed_at": order.placed_at.isoformat(),
            "at": order.at.isoformat(),
            "paid": order.paid,
            "cancelled": order.cancelled,
            "net_subtotal": str(order.net_subtotal),
            "fully_refunded": order.fully_refunded,
            "code": order.code,
            "ip_hash": order.ip_hash,
            "advocate_points": terms.advocate_points,
            "friend_points": terms.friend_points,
            "min_subtotal": str(terms.min_subtotal),
            "review_days": terms.review_days,
            "locale": order.locale,
        }
    )


def encode_verdict(verdict: Verdict) -> bytes:
    return _dump(
        {
            "type": VERDICT,
            "merchant_id": verdict.merchant_id,
            "friend": verdict.friend,
            "referral_id": verdict.referral_id,
            "advocate": verdict.advocate,
            "block": None if verdict.block is None else verdict.block.value,
        }
    )


def decode_code_record(raw: bytes | None) -> CodeCreated | Claim:
    """One referral.commands record, strictly; InvalidEventError when it is not one."""
    body = _object(raw)
    kind = body.get("type")
    if kind == CODE_CREATED:
        return CodeCreated(
            merchant_id=_uuid(body, "merchant_id"),
            code=_code(body, "code"),
            advocate=_read_identity(body, "advocate"),
            at=fields.required_time(body, "at"),
        )
    if kind == CLAIM:
        return Claim(
            merchant_id=_uuid(body, "merchant_id"),
            code=_code(body, "code"),
            referral_id=_uuid(body, "referral_id"),
            friend=_read_identity(body, "friend"),
            order_id=fields.identifier(body, "order_id"),
            placed_at=fields.required_time(body, "placed_at"),
            ip_hash=_hash(body, "ip_hash"),
        )
    raise InvalidEventError(f"unknown referral command type {fields.preview(kind)}")


def decode_friend_record(raw: bytes | None) -> FriendOrder | Verdict:
    """One referral.friends record, strictly; InvalidEventError when it is not one."""
    body = _object(raw)
    kind = body.get("type")
    if kind == FRIEND_ORDER:
        return FriendOrder(
            shop=fields.shop_domain(
                body.get("shop") if isinstance(body.get("shop"), str) else None
            ),
            merchant_id=_uuid(body, "merchant_id"),
            friend=fields.identifier(body, "friend"),
            order_id=fields.identifier(body, "order_id"),
            placed_at=fields.required_time(body, "placed_at"),
            at=fields.required_time(body, "at"),
            paid=_flag(body, "paid"),
            cancelled=_flag(body, "cancelled"),
            net_subtotal=fields.money(body, "net_subtotal"),
            fully_refunded=_flag(body, "fully_refunded"),
            code=None if body.get("code") is None else _code(body, "code"),
            identity=_read_identity(body, "friend"),
            ip_hash=_hash(body, "ip_hash"),
            terms=_terms(body),
            locale=_locale(body),
        )
    if kind == VERDICT:
        block = body.get("block")
        if block is not None and block not in _BLOCKS:
            raise InvalidEventError(f"unknown block {fields.preview(block)}")
        advocate = body.get("advocate")
        return Verdict(
            merchant_id=_uuid(body, "merchant_id"),
            friend=fields.identifier(body, "friend"),
            referral_id=_uuid(body, "referral_id"),
            advocate=None if advocate is None else fields.identifier(body, "advocate"),
            block=None if block is None else Block(block),
        )
    raise InvalidEventError(f"unknown referral record type {fields.preview(kind)}")


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _identity(identity: Identity, role: str) -> dict[str, Any]:
    return {
        role: identity.customer,
        f"{role}_email_hash": identity.email_hash,
        f"{role}_name_hash": identity.name_hash,
        f"{role}_address_hashes": sorted(identity.address_hashes),
    }


def _read_identity(body: dict[str, Any], role: str) -> Identity:
    return Identity(
        fields.identifier(body, role),
        email_hash=_hash(body, f"{role}_email_hash"),
        name_hash=_hash(body, f"{role}_name_hash"),
        address_hashes=_hashes(body, f"{role}_address_hashes"),
    )


def _object(raw: bytes | None) -> dict[str, Any]:
    body = json_input.loads(raw or b"")
    if not isinstance(body, dict):
        raise InvalidEventError("referral record is not a JSON object")
    return body


def _code(body: dict[str, Any], key: str) -> str:
    code = parse_code(body.get(key))
    if code is None or code != body.get(key):
        raise InvalidEventError(f"not a referral code: {fields.preview(body.get(key))}")
    return code


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise InvalidEventError(f"{key} must be true or false, got {fields.preview(value)}")
    return value


def _terms(body: dict[str, Any]) -> ReferralTerms:
    try:
        return ReferralTerms(
            advocate_points=referral_points(str(body.get("advocate_points")), "advocate_points"),
            friend_points=referral_points(str(body.get("friend_points")), "friend_points"),
            min_subtotal=min_subtotal(str(body.get("min_subtotal"))),
            review_days=review_days(str(body.get("review_days"))),
        )
    except InvalidEventError as exc:
        raise InvalidEventError(f"referral terms: {exc}") from exc


def _locale(body: dict[str, Any]) -> str:
    locale = body.get("locale")
    if not isinstance(locale, str) or not fields.is_locale(locale):
        raise InvalidEventError(f"locale must be a language code, got {fields.preview(locale)}")
    return locale


def _uuid(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not fields.UUID_TEXT.fullmatch(value):
        raise InvalidEventError(f"{key} must be a UUID, got {fields.preview(value)}")
    return value


def _hash(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not is_hash(value):
        raise InvalidEventError(f"{key} must be a keyed hash, got {fields.preview(value)}")
    return str(value)


def _hashes(body: dict[str, Any], key: str) -> frozenset[str]:
    values = body.get(key, [])
    if not isinstance(values, list) or len(values) > MAX_ADDRESSES:
        raise InvalidEventError(f"{key} must be a list of at most {MAX_ADDRESSES} hashes")
    if not all(is_hash(v) for v in values):
        raise InvalidEventError(f"{key} must hold keyed hashes only")
    return frozenset(values)
