"""VIP tiers over REST (api/tiers.py) through the real app on in-memory stores: scopes, the
configuration read and saved, a customer's tier and status, counts, and the preview.

`api.tiers.now` is fixed at NOW; the fake store decides when a saved version takes effect."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.tier_configs import TierVersion
from connectors.tier_reads import StoredCounts
from loyalnest.tokens import (
    SCOPE_ANALYTICS,
    SCOPE_TIERS_MANAGE,
    SCOPE_VIEW,
    SCOPES,
)
from loyalty.tier_config import parse_tiers
from loyalty.tier_customers import tier_id
from loyalty.tier_preview import AS_OF_RULE, StoredCustomer
from loyalty.tiers import CustomerMetric, OrderMetric
from loyalty.times import iso_z
from tests.unit.api_fakes import MERCHANT, OTHER_MERCHANT, OTHER_SHOP, FakeStores, auth

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
PAST = NOW - timedelta(days=30)
VIEW = auth(SCOPE_VIEW)
MANAGE = auth(SCOPE_TIERS_MANAGE)
ANALYTICS = auth(SCOPE_ANALYTICS)
UNAVAILABLE = "PostgreSQL is unavailable, retry later"

POINTS_LIFETIME: dict[str, Any] = {
    "metric": "points_earned",
    "period": "lifetime",
    "tiers": [
        {"name": "Bronze", "threshold": 100, "multiplier": "1", "entry_bonus": 10},
        {"name": "Silver", "threshold": 500, "multiplier": "1.25", "entry_bonus": 50},
        {"name": "Gold", "threshold": 1500, "multiplier": "1.5", "entry_bonus": 200},
    ],
}
SPENT_CALENDAR: dict[str, Any] = {
    "metric": "amount_spent",
    "period": "calendar_year",
    "tiers": [
        {"name": "Insider", "threshold": "250.00", "multiplier": "1.1"},
        {"name": "Icon", "threshold": "1000.00", "multiplier": "2", "entry_bonus": 500},
    ],
}
# What POST /v1/tiers/preview is asked about in most tests.
PROPOSAL: dict[str, Any] = {
    "metric": "points_earned",
    "period": "lifetime",
    "tiers": [
        {"name": "Bronze", "threshold": 100, "entry_bonus": 10},
        {"name": "Silver", "threshold": 300, "entry_bonus": 50},
        {"name": "Gold", "threshold": 1000, "entry_bonus": 200},
    ],
}


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.tiers.now", lambda: NOW)


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def http(stores: FakeStores) -> Iterator[TestClient]:
    with stores.client() as client:
        yield client


def at(year: int, month: int = 1, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def configure(
    stores: FakeStores,
    document: dict[str, Any],
    effective_at: datetime = PAST,
    merchant_id: str = MERCHANT,
) -> None:
    """A version of the merchant's tiers, as if saved earlier."""
    mine = stores.tiers.history.setdefault(merchant_id, [])
    mine.append(TierVersion(len(mine) + 1, effective_at, parse_tiers(document)))


def metric(*orders: tuple[int, datetime, str], settled: str = "0") -> CustomerMetric:
    return CustomerMetric(
        {order_id: OrderMetric(when, Decimal(amount)) for order_id, when, amount in orders},
        Decimal(settled),
    )


def points(total: int, when: datetime = PAST) -> CustomerMetric:
    """One order of `total` points (or none for 0), counting from `when`."""
    return metric((1, when, str(total))) if total else CustomerMetric()


def customer(
    tier: str | None, total: int, paid: Mapping[str, datetime] | None = None
) -> StoredCustomer:
    return StoredCustomer(tier, points(total), points(total), dict(paid or {}))


# ----------------------------------------------------------------------------------- scopes

VALID_BODY = POINTS_LIFETIME
ENDPOINTS = [
    ("GET", "/v1/tiers", SCOPE_VIEW, 200),
    ("GET", "/v1/customers/42/tier", SCOPE_VIEW, 200),
    ("PUT", "/v1/tiers", SCOPE_TIERS_MANAGE, 201),
    ("POST", "/v1/tiers/preview", SCOPE_TIERS_MANAGE, 200),
    ("GET", "/v1/tiers/counts", SCOPE_ANALYTICS, 200),
]


@pytest.mark.parametrize(("method", "path", "scope", "status"), ENDPOINTS)
def test_each_endpoint_needs_its_scope_and_no_other_will_do(
    stores: FakeStores, http: TestClient, method: str, path: str, scope: str, status: int
) -> None:
    others = sorted(SCOPES - {scope})

    anonymous = http.request(method, path, json=VALID_BODY)
    forbidden = [http.request(method, path, json=VALID_BODY, headers=auth(s)) for s in others]
    # every scope but the one needed, in one token
    all_but = http.request(method, path, json=VALID_BODY, headers=auth(*others))
    saves_refused = list(stores.tiers.saves)
    allowed = http.request(method, path, json=VALID_BODY, headers=auth(scope))

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert [r.status_code for r in forbidden] == [403] * len(others)
    assert all(r.json() == {"error": f"token lacks scope {scope}"} for r in forbidden)
    assert all_but.status_code == 403
    assert saves_refused == []
    assert allowed.status_code == status


def test_an_invalid_token_is_a_401(http: TestClient) -> None:
    reply = http.get("/v1/tiers", headers={"Authorization": "Bearer not-a-token"})

    assert reply.status_code == 401
    assert reply.json()["error"].startswith("invalid token")


# ------------------------------------------------------------------- PUT and GET /v1/tiers


def test_a_saved_configuration_is_a_201_with_its_version_and_tier_ids(
    stores: FakeStores, http: TestClient
) -> None:
    body = {
        "metric": "amount_spent",
        "period": "rolling_12_months",
        "tiers": [
            {"name": " Insider ", "threshold": "250.50", "multiplier": 1.1},
            {"name": "Icon", "threshold": 1000, "multiplier": "2", "entry_bonus": 500},
        ],
    }
    stores.tiers.effective_at = NOW + timedelta(seconds=10)

    reply = http.put("/v1/tiers", json=body, headers=MANAGE)

    assert reply.status_code == 201
    assert reply.json() == {
        "version": 1,
        "effective_at": "2026-06-15T12:00:10Z",
        "metric": "amount_spent",
        "period": "rolling_12_months",
        "tiers": [
            {
                "name": "Insider",
                "threshold": "250.50",
                "multiplier": "1.1",
                "entry_bonus": 0,
                "tier_id": tier_id(MERCHANT, "Insider"),
            },
            {
                "name": "Icon",
                "threshold": 1000,
                "multiplier": "2",
                "entry_bonus": 500,
                "tier_id": tier_id(MERCHANT, "Icon"),
            },
        ],
    }
    assert stores.tiers.saves == [(MERCHANT, parse_tiers(body))]


def test_a_version_in_the_future_is_pending_and_one_in_the_past_current(
    stores: FakeStores, http: TestClient
) -> None:
    stores.tiers.effective_at = NOW - timedelta(seconds=1)
    first = http.put("/v1/tiers", json=POINTS_LIFETIME, headers=MANAGE).json()
    after_first = http.get("/v1/tiers", headers=VIEW).json()
    stores.tiers.effective_at = NOW + timedelta(seconds=10)
    second = http.put("/v1/tiers", json=SPENT_CALENDAR, headers=MANAGE).json()
    # read at once after the save: the cached versions were forgotten
    after_second = http.get("/v1/tiers", headers=VIEW).json()

    assert (first["version"], second["version"]) == (1, 2)
    assert after_first == {"merchant_id": MERCHANT, "current": first, "pending": None}
    assert after_second == {"merchant_id": MERCHANT, "current": first, "pending": second}
    assert second["effective_at"] == "2026-06-15T12:00:10Z"


def test_a_first_version_not_yet_in_force_is_pending_with_nothing_current(
    stores: FakeStores, http: TestClient
) -> None:
    saved = http.put("/v1/tiers", json=POINTS_LIFETIME, headers=MANAGE).json()

    reply = http.get("/v1/tiers", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {"merchant_id": MERCHANT, "current": None, "pending": saved}


def test_a_version_taking_effect_exactly_now_is_current(
    stores: FakeStores, http: TestClient
) -> None:
    configure(stores, POINTS_LIFETIME, effective_at=NOW)

    body = http.get("/v1/tiers", headers=VIEW).json()

    assert body["pending"] is None
    assert body["current"]["version"] == 1
    assert body["current"]["effective_at"] == iso_z(NOW)


def test_without_tiers_nothing_is_current_or_pending(http: TestClient) -> None:
    reply = http.get("/v1/tiers", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {"merchant_id": MERCHANT, "current": None, "pending": None}


def test_one_merchants_tiers_are_not_anothers(stores: FakeStores, http: TestClient) -> None:
    stores.tiers.effective_at = PAST
    http.put("/v1/tiers", json=POINTS_LIFETIME, headers=MANAGE)

    mine = http.get("/v1/tiers", headers=VIEW).json()
    theirs = http.get("/v1/tiers", headers=auth(SCOPE_VIEW, shop=OTHER_SHOP)).json()

    assert mine["current"]["tiers"][0]["tier_id"] == tier_id(MERCHANT, "Bronze")
    assert theirs == {"merchant_id": OTHER_MERCHANT, "current": None, "pending": None}


def test_the_latest_version_in_force_is_current(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME, effective_at=PAST)
    configure(stores, SPENT_CALENDAR, effective_at=NOW - timedelta(hours=1))

    body = http.get("/v1/tiers", headers=VIEW).json()

    assert body["current"]["version"] == 2
    assert body["current"]["metric"] == "amount_spent"
    assert body["pending"] is None


def tiers_body(*thresholds: int, names: list[str] | None = None) -> dict[str, Any]:
    tier_names = names or [f"T{i}" for i in range(len(thresholds))]
    return {
        "metric": "points_earned",
        "period": "lifetime",
        "tiers": [{"name": n, "threshold": t} for n, t in zip(tier_names, thresholds, strict=True)],
    }


def with_tier(**fields: object) -> dict[str, Any]:
    """POINTS_LIFETIME with its first tier changed."""
    first = POINTS_LIFETIME["tiers"][0] | fields
    return POINTS_LIFETIME | {"tiers": [first, *POINTS_LIFETIME["tiers"][1:]]}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{", "body is not JSON"),
        (b"\xff", "body is not JSON: not UTF-8"),  # said once, as every route says it
        (b"", "body is not JSON"),
        (b'{"metric": NaN}', "body is not JSON"),
        (b"[]", 'tiers must be a JSON object {"metric", "period", "tiers"}'),
        (
            tiers_body(1500, 500),
            "tiers[1].threshold must be above tiers[0]'s (1500): thresholds ascend",
        ),
        (tiers_body(500, 500), "tiers[1].threshold must be above tiers[0]'s (500)"),
        (tiers_body(100, 200, names=["Gold", "gold"]), "tiers[1].name 'gold' is used twice"),
        (tiers_body(*range(1, 12)), "at most 10 tiers, got 11"),
        (POINTS_LIFETIME | {"metric": "visits"}, "metric must be one of points_earned"),
        (POINTS_LIFETIME | {"period": "weekly"}, "period must be one of lifetime"),
        (POINTS_LIFETIME | {"tiers": {}}, "tiers must be a list"),
        (with_tier(name=""), "tiers[0].name must be 1 to 40 characters"),
        (with_tier(name="x" * 41), "tiers[0].name must be 1 to 40 characters"),
        (with_tier(threshold="100"), "tiers[0].threshold must be whole points"),
        (with_tier(threshold=0), "tiers[0].threshold must be whole points"),
        (with_tier(multiplier="0.5"), "tiers[0].multiplier must be a decimal from 1 to 10"),
        (with_tier(multiplier="10.5"), "tiers[0].multiplier must be a decimal from 1 to 10"),
        (with_tier(entry_bonus=-1), "tiers[0].entry_bonus must be 0 to 1000000"),
        (with_tier(entry_bonus="10"), "tiers[0].entry_bonus must be whole points"),
        (
            SPENT_CALENDAR | {"tiers": [{"name": "A", "threshold": "250.001"}]},
            "tiers[0].threshold must be an amount",
        ),
    ],
)
def test_an_invalid_configuration_is_a_400_naming_the_field(
    stores: FakeStores, http: TestClient, body: bytes | dict[str, Any], said: str
) -> None:
    if isinstance(body, bytes):
        reply = http.put("/v1/tiers", content=body, headers=MANAGE)
    else:
        reply = http.put("/v1/tiers", json=body, headers=MANAGE)

    assert reply.status_code == 400
    assert said in reply.json()["error"]
    assert stores.tiers.saves == []
    assert stores.tiers.history == {}


def test_ten_tiers_are_allowed(http: TestClient) -> None:
    reply = http.put("/v1/tiers", json=tiers_body(*range(1, 11)), headers=MANAGE)

    assert reply.status_code == 201
    assert len(reply.json()["tiers"]) == 10


def test_saving_for_a_merchant_the_database_does_not_have_is_a_404(
    stores: FakeStores, http: TestClient
) -> None:
    stores.tiers.merchants.discard(MERCHANT)

    reply = http.put("/v1/tiers", json=POINTS_LIFETIME, headers=MANAGE)

    assert reply.status_code == 404
    assert reply.json() == {"error": "merchant not found"}


# ----------------------------------------------------------------- GET a customer's tier


def test_a_customer_on_points_over_a_lifetime(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)
    earned = metric(
        (1, at(2026, 3), "400"),
        (2, at(2026, 5), "300"),
        (3, at(2026, 7), "1000"),  # pending: counts from July
        settled="100",
    )
    spent = metric((1, at(2026, 3), "5000.00"))  # not the metric: ignored
    stores.tiers.keep(MERCHANT, 42, StoredCustomer("Silver", earned, spent))

    reply = http.get("/v1/customers/42/tier", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {
        "customer_id": 42,
        "as_of": iso_z(NOW),
        "tier": "Silver",
        "tier_id": tier_id(MERCHANT, "Silver"),
        "multiplier": "1.25",
        "metric": "points_earned",
        "period": "lifetime",
        "progress": 800,
        "next_tier": "Gold",
        "delta_to_next": 700,
        "delta_to_retain": 0,
        "period_end": None,
    }


def test_at_the_top_tier_there_is_no_next(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)
    stores.tiers.keep(MERCHANT, 42, customer("Gold", 2000))

    body = http.get("/v1/customers/42/tier", headers=VIEW).json()

    assert (body["tier"], body["multiplier"], body["progress"]) == ("Gold", "1.5", 2000)
    assert (body["next_tier"], body["delta_to_next"]) == (None, None)


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        (
            # Insider reached last year: held through 2026, 99.25 more this year keeps it.
            [
                (1, at(2025, 11), "300.00"),
                (2, at(2026, 2), "120.50"),
                (3, at(2026, 4, 10), "30.25"),
            ],
            {
                "progress": "150.75",
                "delta_to_next": "849.25",
                "delta_to_retain": "99.25",
                "period_end": "2027-01-01T00:00:00Z",
            },
        ),
        (
            # Insider reached this year: held through 2027.
            [(1, at(2026, 2), "260.00")],
            {
                "progress": "260.00",
                "delta_to_next": "740.00",
                "delta_to_retain": "0",
                "period_end": "2028-01-01T00:00:00Z",
            },
        ),
    ],
)
def test_a_customer_on_amount_spent_over_calendar_years(
    stores: FakeStores,
    http: TestClient,
    orders: list[tuple[int, datetime, str]],
    expected: dict[str, object],
) -> None:
    configure(stores, SPENT_CALENDAR)
    earned = metric((1, at(2026, 2), "99999"))  # not the metric: ignored
    stores.tiers.keep(MERCHANT, 43, StoredCustomer("Insider", earned, metric(*orders)))

    reply = http.get("/v1/customers/43/tier", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {
        "customer_id": 43,
        "as_of": iso_z(NOW),
        "tier": "Insider",
        "tier_id": tier_id(MERCHANT, "Insider"),
        "multiplier": "1.1",
        "metric": "amount_spent",
        "period": "calendar_year",
        "next_tier": "Icon",
        **expected,
    }


def test_a_customer_without_orders_has_no_tier_and_nothing_counted(
    stores: FakeStores, http: TestClient
) -> None:
    configure(stores, POINTS_LIFETIME)

    reply = http.get("/v1/customers/99/tier", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {
        "customer_id": 99,
        "as_of": iso_z(NOW),
        "tier": None,
        "tier_id": None,
        "multiplier": "1",
        "metric": "points_earned",
        "period": "lifetime",
        "progress": 0,
        "next_tier": "Bronze",
        "delta_to_next": 100,
        "delta_to_retain": 0,
        "period_end": None,
    }


def test_a_customer_without_orders_on_amount_spent_counts_decimal_text(
    stores: FakeStores, http: TestClient
) -> None:
    configure(stores, SPENT_CALENDAR)

    body = http.get("/v1/customers/99/tier", headers=VIEW).json()

    assert body["tier"] is None
    assert (body["progress"], body["delta_to_next"], body["delta_to_retain"]) == (
        "0",
        "250.00",
        "0",
    )
    assert body["period_end"] == "2027-01-01T00:00:00Z"


def test_a_tier_the_configuration_no_longer_has_multiplies_by_one(
    stores: FakeStores, http: TestClient
) -> None:
    configure(stores, POINTS_LIFETIME)
    stores.tiers.keep(MERCHANT, 42, customer("Platinum", 800))

    body = http.get("/v1/customers/42/tier", headers=VIEW).json()

    assert (body["tier"], body["tier_id"]) == ("Platinum", tier_id(MERCHANT, "Platinum"))
    assert body["multiplier"] == "1"
    assert body["next_tier"] == "Gold"  # the status is the configuration's


def test_a_tier_renamed_in_case_keeps_its_multiplier(stores: FakeStores, http: TestClient) -> None:
    # The flow assigned "Silver"; the merchant renamed it "SILVER" (the same tier id), which
    # the flow does not treat as a move, so the row still says "Silver".
    renamed = {"name": "SILVER", "threshold": 500, "multiplier": "1.25"}
    configure(stores, POINTS_LIFETIME | {"tiers": [renamed]})
    stores.tiers.keep(MERCHANT, 42, customer("Silver", 800))

    body = http.get("/v1/customers/42/tier", headers=VIEW).json()

    assert body["tier_id"] == tier_id(MERCHANT, "SILVER")
    assert body["multiplier"] == "1.25"


@pytest.mark.parametrize("effective_at", [None, NOW + timedelta(seconds=5)])
def test_without_tiers_in_force_there_is_no_tier_and_no_metric(
    stores: FakeStores, http: TestClient, effective_at: datetime | None
) -> None:
    if effective_at is not None:  # saved, not yet in force
        configure(stores, POINTS_LIFETIME, effective_at=effective_at)
    stores.tiers.keep(MERCHANT, 42, customer("Silver", 800))

    reply = http.get("/v1/customers/42/tier", headers=VIEW)

    assert reply.status_code == 200
    assert reply.json() == {
        "customer_id": 42,
        "as_of": iso_z(NOW),
        "tier": None,
        "tier_id": None,
        "multiplier": "1",
        "metric": None,
    }


def test_another_merchants_customer_is_not_seen(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)
    configure(stores, POINTS_LIFETIME, merchant_id=OTHER_MERCHANT)
    stores.tiers.keep(MERCHANT, 42, customer("Silver", 800))

    body = http.get("/v1/customers/42/tier", headers=auth(SCOPE_VIEW, shop=OTHER_SHOP)).json()

    assert (body["tier"], body["progress"]) == (None, 0)


@pytest.mark.parametrize("customer_id", ["abc", "0", "-1", "4.2", "99999999999999999999", "²"])
def test_a_bad_customer_id_is_a_400(http: TestClient, customer_id: str) -> None:
    reply = http.get(f"/v1/customers/{customer_id}/tier", headers=VIEW)

    assert reply.status_code == 400
    assert reply.json() == {"error": "customer_id must be a Shopify customer id (digits)"}


# ------------------------------------------------------------------------ GET the counts


def test_counts_name_every_configured_tier(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)
    counted_at = datetime(2026, 6, 15, 11, 59, tzinfo=UTC)
    stores.tiers.tallies[MERCHANT] = StoredCounts(
        {"": 4, "Bronze": 3, "Gold": 1, "Platinum": 2}, counted_at
    )

    reply = http.get("/v1/tiers/counts", headers=ANALYTICS)

    assert reply.status_code == 200
    assert reply.json() == {
        "merchant_id": MERCHANT,
        "as_of": "2026-06-15T11:59:00Z",
        "customers": 10,
        # Silver: nobody yet; Platinum: no longer configured, still held until re-evaluated
        "tiers": {"Bronze": 3, "Silver": 0, "Gold": 1, "Platinum": 2},
        "no_tier": 4,
    }


def test_without_stored_counts_every_tier_is_zero(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)

    reply = http.get("/v1/tiers/counts", headers=ANALYTICS)

    assert reply.status_code == 200
    assert reply.json() == {
        "merchant_id": MERCHANT,
        "as_of": None,
        "customers": 0,
        "tiers": {"Bronze": 0, "Silver": 0, "Gold": 0},
        "no_tier": 0,
    }


def test_counts_without_tiers_or_customers_are_empty(http: TestClient) -> None:
    body = http.get("/v1/tiers/counts", headers=ANALYTICS).json()

    assert body == {
        "merchant_id": MERCHANT,
        "as_of": None,
        "customers": 0,
        "tiers": {},
        "no_tier": 0,
    }


def test_counts_are_the_callers_merchants(stores: FakeStores, http: TestClient) -> None:
    stores.tiers.tallies[MERCHANT] = StoredCounts({"Bronze": 3}, NOW)

    body = http.get("/v1/tiers/counts", headers=auth(SCOPE_ANALYTICS, shop=OTHER_SHOP)).json()

    assert (body["merchant_id"], body["customers"], body["tiers"]) == (OTHER_MERCHANT, 0, {})


# ---------------------------------------------------------------------------- the preview


def merchants_customers(stores: FakeStores) -> None:
    keep = stores.tiers.keep
    keep(MERCHANT, 1, customer(None, 150))  # -> Bronze: up, Bronze's bonus
    # -> Gold, skipping Silver: both bonuses (Bronze's was paid, and below anyway)
    keep(MERCHANT, 2, customer("Bronze", 1200, {"bronze": at(2025)}))
    keep(MERCHANT, 3, customer("Silver", 600))  # Silver still
    keep(MERCHANT, 4, customer("Gold", 900))  # -> Silver: down, no bonus
    # -> Gold: Bronze's and Silver's bonuses; Gold's was paid (lifetime: once ever)
    keep(MERCHANT, 5, customer(None, 1100, {"gold": at(2025, 3)}))
    keep(MERCHANT, 6, customer(None, 0))  # no tier still
    keep(OTHER_MERCHANT, 1, customer("Gold", 5000))  # not this merchant's


def test_a_preview_compares_today_with_the_proposal(stores: FakeStores, http: TestClient) -> None:
    merchants_customers(stores)

    reply = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE)

    assert reply.status_code == 200
    assert reply.json() == {
        "merchant_id": MERCHANT,
        "as_of": iso_z(NOW),
        "customers": 6,
        "today": {"tiers": {"Bronze": 1, "Silver": 1, "Gold": 1}, "no_tier": 3},
        "proposed": {"tiers": {"Bronze": 1, "Silver": 2, "Gold": 2}, "no_tier": 1},
        "moved_up": 3,
        "moved_down": 1,
        "unchanged": 2,
        "entry_bonuses": 5,
        "entry_bonus_points": 10 + (50 + 200) + (10 + 50),
    }


def test_a_preview_changes_nothing(stores: FakeStores, http: TestClient) -> None:
    merchants_customers(stores)
    configure(stores, POINTS_LIFETIME)
    before = http.get("/v1/tiers", headers=VIEW).json()
    rows = dict(stores.tiers.rows)

    reply = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE)
    after = http.get("/v1/tiers", headers=VIEW).json()

    assert reply.status_code == 200
    assert stores.tiers.saves == []
    assert len(stores.tiers.history[MERCHANT]) == 1
    assert after == before
    assert stores.tiers.rows == rows


def test_a_preview_without_customers_names_every_proposed_tier(http: TestClient) -> None:
    body = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE).json()

    assert body["customers"] == 0
    assert body["today"] == {"tiers": {}, "no_tier": 0}
    assert body["proposed"] == {"tiers": {"Bronze": 0, "Silver": 0, "Gold": 0}, "no_tier": 0}
    assert (body["moved_up"], body["moved_down"], body["unchanged"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("as_of", "said_as_of", "bronze"),
    [
        (None, iso_z(NOW), 0),
        # a date: its end, so an order counting from 20:00 that day counts
        ("2026-12-31", "2026-12-31T23:59:59.999999Z", 1),
        ("2026-12-31T10:00:00+02:00", "2026-12-31T08:00:00Z", 0),
        ("2026-12-31T20:00:00Z", "2026-12-31T20:00:00Z", 1),
        ("2026-12-31T19:59:59.999999Z", "2026-12-31T19:59:59.999999Z", 0),
    ],
)
def test_a_preview_is_as_of_the_moment_asked(
    stores: FakeStores, http: TestClient, as_of: str | None, said_as_of: str, bronze: int
) -> None:
    pending = StoredCustomer(None, points(150, at(2026, 12, 31, 20)), CustomerMetric())
    stores.tiers.keep(MERCHANT, 7, pending)
    params = {} if as_of is None else {"as_of": as_of}

    reply = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE, params=params)

    assert reply.status_code == 200
    body = reply.json()
    assert body["as_of"] == said_as_of
    assert body["proposed"]["tiers"]["Bronze"] == bronze
    assert (body["moved_up"], body["entry_bonus_points"]) == (bronze, 10 * bronze)


@pytest.mark.parametrize(
    "as_of", ["", "tomorrow", "31/12/2026", "2026-12-31T10:00:00", "2026-13-01", "20261231"]
)
def test_a_bad_as_of_is_a_400(stores: FakeStores, http: TestClient, as_of: str) -> None:
    merchants_customers(stores)

    reply = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE, params={"as_of": as_of})

    assert reply.status_code == 400
    assert reply.json() == {"error": AS_OF_RULE}


@pytest.mark.parametrize("as_of", ["9999-12-31", "9999-12-31T23:00:00-02:00"])
def test_an_as_of_out_of_range_is_a_400(stores: FakeStores, http: TestClient, as_of: str) -> None:
    merchants_customers(stores)

    reply = http.post("/v1/tiers/preview", json=PROPOSAL, headers=MANAGE, params={"as_of": as_of})

    assert reply.status_code == 400


def test_an_invalid_proposal_is_a_400_naming_the_field(
    stores: FakeStores, http: TestClient
) -> None:
    merchants_customers(stores)

    reply = http.post("/v1/tiers/preview", json=tiers_body(300, 100), headers=MANAGE)
    not_json = http.post("/v1/tiers/preview", content=b"{", headers=MANAGE)

    assert reply.status_code == 400
    assert "tiers[1].threshold must be above tiers[0]'s (300)" in reply.json()["error"]
    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("body is not JSON")


# --------------------------------------------------------------------- PostgreSQL away


@pytest.mark.parametrize(("method", "path", "scope", "status"), ENDPOINTS)
def test_postgresql_away_is_a_503_with_retry_after(
    stores: FakeStores, http: TestClient, method: str, path: str, scope: str, status: int
) -> None:
    configure(stores, POINTS_LIFETIME)
    stores.tiers.down = True

    reply = http.request(method, path, json=VALID_BODY, headers=auth(scope))

    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "5"
    assert reply.json() == {"error": UNAVAILABLE}
    assert stores.tiers.saves == []


def test_the_tiers_read_again_once_postgresql_is_back(stores: FakeStores, http: TestClient) -> None:
    configure(stores, POINTS_LIFETIME)
    stores.tiers.down = True
    away = http.get("/v1/tiers", headers=VIEW)
    stores.tiers.down = False

    back = http.get("/v1/tiers", headers=VIEW)

    assert away.status_code == 503
    assert back.status_code == 200
    assert back.json()["current"]["version"] == 1
