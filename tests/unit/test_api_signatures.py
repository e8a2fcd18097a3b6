"""Webhook signatures: right and wrong, and the same work for every shop, known or not."""

from __future__ import annotations

import base64

import pytest

from api.signatures import DIGESTS, SignatureCheck, hmac_sha256
from connectors.shopify import sign

BODY = b'{"id": 1}' * 1000


class CountingDigest:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []  # (key length, body length)

    def __call__(self, key: bytes, body: bytes) -> bytes:
        self.calls.append((len(key), len(body)))
        return hmac_sha256(key, body)


def test_the_current_or_the_previous_secret_signs_and_nothing_else_does() -> None:
    check = SignatureCheck()

    assert check.valid(BODY, sign(BODY, "current"), ["current", "previous"])
    assert check.valid(BODY, sign(BODY, "previous"), ["current", "previous"])
    assert check.valid(BODY, sign(BODY, "current"), ["current"])
    assert not check.valid(BODY, sign(BODY, "other"), ["current", "previous"])
    assert not check.valid(BODY + b" ", sign(BODY, "current"), ["current"])
    assert not check.valid(BODY, sign(BODY, "current"), [])
    assert not check.valid(BODY, "%%% not base64 %%%", ["current"])
    assert not check.valid(BODY, "ünïcode", ["current"])


@pytest.mark.parametrize(
    "shop_secrets",
    [[], ["current"], ["current", "previous"]],
    ids=["unknown shop", "one secret", "rotated"],
)
@pytest.mark.parametrize(
    "signature",
    [sign(BODY, "wrong"), "%%% not base64 %%%", base64.b64encode(b"short").decode()],
    ids=["wrong secret", "not base64", "wrong length"],
)
def test_every_check_computes_exactly_two_digests_over_the_whole_body(
    shop_secrets: list[str], signature: str
) -> None:
    digest = CountingDigest()

    valid = SignatureCheck(digest).valid(BODY, signature, shop_secrets)

    assert not valid
    assert len(digest.calls) == DIGESTS
    assert [body for _key, body in digest.calls] == [len(BODY)] * DIGESTS


def test_a_known_and_an_unknown_shop_cost_the_same_digests() -> None:
    known, unknown = CountingDigest(), CountingDigest()

    SignatureCheck(known).valid(BODY, sign(BODY, "wrong"), ["a-shop-secret"])
    SignatureCheck(unknown).valid(BODY, sign(BODY, "wrong"), [])

    assert [b for _k, b in known.calls] == [b for _k, b in unknown.calls]


def test_the_dummy_secrets_differ_per_process_and_sign_nothing_a_shop_could_know() -> None:
    first, second = SignatureCheck(), SignatureCheck()

    assert first._dummies != second._dummies
    assert len(set(first._dummies)) == DIGESTS
    for dummy in first._dummies:  # signed with the dummy itself, still not a shop's signature
        forged = base64.b64encode(hmac_sha256(dummy, BODY)).decode()
        assert not first.valid(BODY, forged, [])
