"""The `referral.commands` record format: JSON, keyed merchant:code, kept forever.

`referral.code`: a code given to an advocate (the API writes it each time the code is asked
for; the code's state keeps the first). It carries the advocate's identity as hashes (the
customers table's, when the advocate's orders have given them), for the self-referral check.
"""

from __future__ import annotations

import json
import re
from typing import Any

from loyalty import fields, json_input
from loyalty.errors import InvalidEventError
from loyalty.pii import is_hash
from loyalty.referral_codes import parse_code
from loyalty.referral_fraud import Identity
from loyalty.referrals import CodeCreated

CODE_CREATED = "referral.code"
MAX_ADDRESSES = 8
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def referral_key(merchant_id: str, code: str) -> bytes:
    return f"{merchant_id}:{code}".encode()


def encode_code_created(created: CodeCreated) -> bytes:
    advocate = created.advocate
    body = {
        "type": CODE_CREATED,
        "merchant_id": created.merchant_id,
        "code": created.code,
        "advocate": advocate.customer,
        "email_hash": advocate.email_hash,
        "name_hash": advocate.name_hash,
        "address_hashes": sorted(advocate.address_hashes),
        "at": created.at.isoformat(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_referral_command(raw: bytes | None) -> CodeCreated:
    """Parse one referral.commands record strictly; InvalidEventError when it is not one."""
    body = json_input.loads(raw or b"")
    if not isinstance(body, dict):
        raise InvalidEventError("referral command is not a JSON object")
    if body.get("type") != CODE_CREATED:
        raise InvalidEventError(f"unknown referral command type {fields.preview(body.get('type'))}")
    code = parse_code(body.get("code"))
    if code is None or code != body.get("code"):
        raise InvalidEventError(f"not a referral code: {fields.preview(body.get('code'))}")
    at = fields.optional_time(body, "at")
    if at is None:
        raise InvalidEventError("at is missing")
    return CodeCreated(
        merchant_id=_uuid(body, "merchant_id"),
        code=code,
        advocate=Identity(
            fields.identifier(body, "advocate"),
            email_hash=_hash(body, "email_hash"),
            name_hash=_hash(body, "name_hash"),
            address_hashes=_hashes(body, "address_hashes"),
        ),
        at=at,
    )


def _uuid(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not _UUID.fullmatch(value):
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
