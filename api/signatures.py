"""Shopify webhook signatures, checked at the same cost whether the shop is ours or not.

A registered shop used to cost an HMAC over the body and an unknown one nothing, so timing a
large body told anyone which shops use the app. Every check now computes exactly two
HMAC-SHA256 digests over the body: the current and the previous secret, with a per-process
random dummy secret standing in for a missing one (an unknown shop uses two dummies), compared
in constant time without an early exit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence

DIGESTS = 2  # the current secret and the previous one (kept for an hour after a rotation)

Digest = Callable[[bytes, bytes], bytes]


def hmac_sha256(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


class SignatureCheck:
    def __init__(self, digest: Digest = hmac_sha256) -> None:
        self._digest = digest
        # Random per process: no request can be signed with it, and it is never stored.
        self._dummies = [secrets.token_bytes(32) for _ in range(DIGESTS)]

    def valid(self, body: bytes, signature: str, shop_secrets: Sequence[str]) -> bool:
        """Whether `signature` (base64, as Shopify sends it) signs `body` with one of
        `shop_secrets` (none for an unknown shop; at most two are ever accepted)."""
        given = _decoded(signature)
        keys = [s.encode() for s in shop_secrets[:DIGESTS]]
        keys += self._dummies[len(keys) :]
        matched = [hmac.compare_digest(self._digest(key, body), given) for key in keys]
        # A dummy can never match (nobody knows it), so only real secrets can make this True.
        return any(matched[: len(shop_secrets)])


def _decoded(signature: str) -> bytes:
    """The signature's bytes; b"" (which matches no digest) if it is not base64."""
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return b""
