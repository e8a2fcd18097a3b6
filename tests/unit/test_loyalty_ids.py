"""Deterministic UUIDv5 identities."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty import ids

SHOP = "demo.myshopify.com"
M = ids.merchant_id(SHOP)


def test_merchant_id_is_deterministic_uuid5_in_the_project_namespace() -> None:
    first = ids.merchant_id(SHOP)

    assert first == ids.merchant_id(SHOP)
    assert first.version == 5
    assert first == uuid.uuid5(ids.NAMESPACE, f"shop:{SHOP}")


@pytest.mark.parametrize(
    "spelling",
    ["DEMO.myshopify.com", "  demo.myshopify.com", "demo.myshopify.com\n", " Demo.MyShopify.COM "],
)
def test_shop_case_and_surrounding_whitespace_give_the_same_merchant_id(spelling: str) -> None:
    assert ids.merchant_id(spelling) == ids.merchant_id(SHOP)


def test_customer_id_follows_the_normalized_shop_through_the_merchant_id() -> None:
    merchant = ids.merchant_id(" DEMO.myshopify.com ")
    assert ids.customer_id(merchant, 42) == ids.customer_id(ids.merchant_id(SHOP), 42)
    assert ids.customer_id(merchant, 42) == ids.customer_id(str(merchant), 42)


def test_normalize_shop_strips_and_lowercases() -> None:
    assert ids.normalize_shop("\tShop.MyShopify.com ") == "shop.myshopify.com"


def test_different_shops_have_different_merchant_ids() -> None:
    assert ids.merchant_id(SHOP) != ids.merchant_id("other.myshopify.com")


def test_customer_id_is_deterministic() -> None:
    assert ids.customer_id(M, 7) == ids.customer_id(M, 7)


def test_different_customers_of_one_shop_have_different_ids() -> None:
    assert ids.customer_id(M, 1) != ids.customer_id(M, 2)


def test_same_customer_number_in_two_shops_gives_different_ids() -> None:
    assert ids.customer_id(M, 1) != ids.customer_id(ids.merchant_id("other.myshopify.com"), 1)


def test_merchant_customer_and_event_ids_do_not_collide_for_similar_input() -> None:
    generated = {ids.merchant_id(SHOP), ids.customer_id(M, 1), ids.event_id(SHOP, 1)}

    assert len(generated) == 3


def test_event_id_is_deterministic() -> None:
    assert ids.event_id(SHOP, 1001, "earn") == ids.event_id(SHOP, 1001, "earn")


@pytest.mark.parametrize(
    "other",
    [
        ("other.myshopify.com", 1001, "earn"),
        (SHOP, 1002, "earn"),
        (SHOP, 1001, "redeem"),
        (SHOP, 1001),
        (SHOP, 1001, "earn", "extra"),
    ],
)
def test_event_id_differs_when_any_part_differs(other: tuple[object, ...]) -> None:
    assert ids.event_id(*other) != ids.event_id(SHOP, 1001, "earn")


def test_event_id_depends_on_part_order() -> None:
    assert ids.event_id("a", "b") != ids.event_id("b", "a")


def test_ids_are_stable_across_releases() -> None:
    # Stored documents and Core's tables hold these ids: changing the derivation breaks them.
    assert ids.merchant_id(SHOP) == uuid.UUID("be50b373-8f5c-5a49-8833-23a6513d58e3")
    assert ids.customer_id(M, 42) == uuid.UUID("2b08b4f2-491a-55f6-bbef-d3b6e562e066")
    assert ids.event_id(SHOP, 1001, "earn") == uuid.UUID("310cbaa3-ed8b-5e58-900a-98e49b707f82")


def test_an_adjustment_id_is_derived_from_merchant_and_key_in_its_own_namespace() -> None:
    assert ids.adjustment_id(M, "k-1") == ids.adjustment_id(str(M), "k-1")
    assert ids.adjustment_id(M, "k-1").version == 5
    assert ids.adjustment_id(M, "k-1") != ids.adjustment_id(M, "k-2")
    assert ids.adjustment_id(M, "k-1") != ids.adjustment_id(
        ids.merchant_id("o.myshopify.com"), "k-1"
    )
    # The same key used for a redemption and an adjustment names two different things.
    assert ids.adjustment_id(M, "k-1") != ids.redemption_id(M, "k-1")
    assert ids.adjustment_id(M, "k-1") == uuid.uuid5(ids.NAMESPACE, f"adjustment:{M}:k-1")


# The text forms are built without uuid.uuid5 (for speed): they must be exactly its ids.
@given(st.text())
def test_uuid5_text_is_the_standard_uuid5_of_the_name(name: str) -> None:
    assert ids.uuid5_text(name) == str(uuid.uuid5(ids.NAMESPACE, name))


@given(st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=5))
def test_event_key_is_the_uuid5_of_the_parts_as_a_json_list(parts: list[object]) -> None:
    name = "event:" + json.dumps([str(p) for p in parts])

    assert ids.event_key(*parts) == str(uuid.uuid5(ids.NAMESPACE, name))
    assert ids.event_id(*parts) == uuid.uuid5(ids.NAMESPACE, name)


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_customer_key_is_the_customer_id_as_text(customer: int) -> None:
    assert ids.customer_key(M, customer) == str(ids.customer_id(M, customer))
    assert ids.customer_id(M, customer) == uuid.uuid5(ids.NAMESPACE, f"customer:{M}:{customer}")
