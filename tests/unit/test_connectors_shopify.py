"""The shopify.orders record key: shop:order, and never an error for a body gone wrong."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.shopify import partition_key

SHOP = "Shop-A.myshopify.com"


def test_orders_are_keyed_by_id_and_refunds_by_order_id() -> None:
    assert partition_key(SHOP, "orders/create", {"id": 5}) == b"shop-a.myshopify.com:5"
    assert partition_key(SHOP, "refunds/create", {"id": 9, "order_id": 5}) == (
        b"shop-a.myshopify.com:5"
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"id": None}, {"id": True}, {"id": "5"}, {"id": [1] * 1000}, {"id": {"a": 1}}, [1], "x"],
)
def test_a_body_without_a_usable_id_is_keyed_without_one(body: Any) -> None:
    assert partition_key(SHOP, "orders/create", body) == b"shop-a.myshopify.com:None"
