"""Merchants in PostgreSQL. Webhook secrets are stored encrypted (pgcrypto) and the previous
one is kept after a rotation, because Shopify may sign with it for up to an hour.

A merchant's program settings (`program_settings`: pending days, expiry, warning days, RFM
lookback, referral terms) are read with it in the same query; a merchant without a settings
row has the defaults of `loyalty.policy.Policy` and `loyalty.referral_terms.ReferralTerms`.
The API attaches the points and RFM terms to every order webhook it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

import psycopg
from psycopg.rows import class_row, kwargs_row
from psycopg_pool import AsyncConnectionPool

from loyalty import ids
from loyalty.policy import (
    DEFAULT_RFM_LOOKBACK_DAYS,
    DEFAULT_WARNING_DAYS,
    NO_EXPIRY,
    Expiry,
    Policy,
    terms_problem,
)
from loyalty.referral_terms import DEFAULT_REFERRAL_TERMS, ReferralTerms

# The API's PostgreSQL connection pool, as every async query here takes it.
Pool = AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]]

UPSERT = """
INSERT INTO merchants (id, shop_domain, webhook_secret, points_per_unit, locale)
VALUES (%(id)s, %(shop)s, pgp_sym_encrypt(%(secret)s, %(key)s), %(ppu)s, %(locale)s)
ON CONFLICT (shop_domain) DO UPDATE SET
    previous_webhook_secret = CASE
        WHEN pgp_sym_decrypt(merchants.webhook_secret, %(key)s) = %(secret)s
        THEN merchants.previous_webhook_secret ELSE merchants.webhook_secret END,
    secret_rotated_at = CASE
        WHEN pgp_sym_decrypt(merchants.webhook_secret, %(key)s) = %(secret)s
        THEN merchants.secret_rotated_at ELSE now() END,
    webhook_secret = EXCLUDED.webhook_secret,
    points_per_unit = EXCLUDED.points_per_unit,
    locale = EXCLUDED.locale,
    updated_at = now()
RETURNING id::text AS merchant_id, shop_domain AS shop, points_per_unit, locale,
          secret_rotated_at IS NOT NULL AS rotated
"""

# Settings given on the command line replace the stored ones; those not given (NULL) are kept.
# A new row takes the defaults for those, passed in from loyalty.policy (one home for them).
UPSERT_SETTINGS = """
INSERT INTO program_settings
    (merchant_id, pending_days, expiry, expiry_warning_days, rfm_lookback_days,
     referral_advocate_points, referral_friend_points, referral_min_subtotal,
     referral_review_days)
VALUES (%(id)s, COALESCE(%(pending)s::int, %(default_pending)s),
        COALESCE(%(expiry)s::text, %(default_expiry)s),
        COALESCE(%(warning)s::int, %(default_warning)s),
        COALESCE(%(lookback)s::int, %(default_lookback)s),
        COALESCE(%(advocate)s::int, %(default_advocate)s),
        COALESCE(%(friend)s::int, %(default_friend)s),
        COALESCE(%(min_subtotal)s::numeric, %(default_min_subtotal)s),
        COALESCE(%(review)s::int, %(default_review)s))
ON CONFLICT (merchant_id) DO UPDATE SET
    pending_days = COALESCE(%(pending)s::int, program_settings.pending_days),
    expiry = COALESCE(%(expiry)s::text, program_settings.expiry),
    expiry_warning_days = COALESCE(%(warning)s::int, program_settings.expiry_warning_days),
    rfm_lookback_days = COALESCE(%(lookback)s::int, program_settings.rfm_lookback_days),
    referral_advocate_points =
        COALESCE(%(advocate)s::int, program_settings.referral_advocate_points),
    referral_friend_points = COALESCE(%(friend)s::int, program_settings.referral_friend_points),
    referral_min_subtotal =
        COALESCE(%(min_subtotal)s::numeric, program_settings.referral_min_subtotal),
    referral_review_days = COALESCE(%(review)s::int, program_settings.referral_review_days),
    updated_at = now()
RETURNING pending_days, expiry, expiry_warning_days AS warning_days, rfm_lookback_days,
          referral_advocate_points, referral_friend_points, referral_min_subtotal,
          referral_review_days
"""

# One query per lookup: the settings come with the merchant (LEFT JOIN: no row, the defaults).
SELECT = """
SELECT m.id::text AS merchant_id, m.shop_domain AS shop, m.points_per_unit, m.locale,
       pgp_sym_decrypt(m.webhook_secret, %(key)s) AS secret,
       CASE WHEN m.secret_rotated_at > now() - interval '1 hour'
            THEN pgp_sym_decrypt(m.previous_webhook_secret, %(key)s) END AS previous_secret,
       s.pending_days, s.expiry, s.expiry_warning_days AS warning_days, s.rfm_lookback_days,
       s.referral_advocate_points, s.referral_friend_points, s.referral_min_subtotal,
       s.referral_review_days
FROM merchants m LEFT JOIN program_settings s ON s.merchant_id = m.id
WHERE {where}
"""


@dataclass(frozen=True)
class SettingsUpdate:
    """Program settings to store; None leaves the stored value (or the default) as it is."""

    pending_days: int | None = None
    expiry: Expiry | None = None
    warning_days: int | None = None
    rfm_lookback_days: int | None = None
    referral_advocate_points: int | None = None
    referral_friend_points: int | None = None
    referral_min_subtotal: Decimal | None = None
    referral_review_days: int | None = None


@dataclass(frozen=True)
class MerchantSummary:
    merchant_id: str
    shop: str
    points_per_unit: Decimal
    locale: str
    rotated: bool
    pending_days: int = Policy.pending_days
    expiry: Expiry = NO_EXPIRY
    warning_days: int = DEFAULT_WARNING_DAYS
    rfm_lookback_days: int = DEFAULT_RFM_LOOKBACK_DAYS
    referral: ReferralTerms = DEFAULT_REFERRAL_TERMS


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    shop: str
    points_per_unit: Decimal
    locale: str
    secret: str
    previous_secret: str | None
    pending_days: int = Policy.pending_days
    expiry: Expiry = NO_EXPIRY
    warning_days: int = DEFAULT_WARNING_DAYS
    rfm_lookback_days: int = DEFAULT_RFM_LOOKBACK_DAYS
    referral: ReferralTerms = DEFAULT_REFERRAL_TERMS

    @property
    def secrets(self) -> list[str]:
        """Secrets a webhook may be signed with: the current one, then the previous one."""
        return [self.secret] + ([self.previous_secret] if self.previous_secret else [])

    @property
    def policy(self) -> Policy:
        """The merchant's terms now: what an order webhook accepted now is earned under."""
        return Policy(
            points_per_unit=self.points_per_unit,
            locale=self.locale,
            pending_days=self.pending_days,
            expiry=self.expiry,
            warning_days=self.warning_days,
            rfm_lookback_days=self.rfm_lookback_days,
        )


def _merchant(
    *,
    merchant_id: str,
    shop: str,
    points_per_unit: Decimal,
    locale: str,
    secret: str,
    previous_secret: str | None,
    pending_days: int | None,
    expiry: str | None,
    warning_days: int | None,
    rfm_lookback_days: int | None,
    referral_advocate_points: int | None,
    referral_friend_points: int | None,
    referral_min_subtotal: Decimal | None,
    referral_review_days: int | None,
) -> Merchant:
    """A looked-up row as a Merchant; settings columns are NULL when it has no settings row."""
    return Merchant(
        merchant_id=merchant_id,
        shop=shop,
        points_per_unit=points_per_unit,
        locale=locale,
        secret=secret,
        previous_secret=previous_secret,
        pending_days=Policy.pending_days if pending_days is None else pending_days,
        expiry=NO_EXPIRY if expiry is None else Expiry.parse(expiry),
        warning_days=DEFAULT_WARNING_DAYS if warning_days is None else warning_days,
        rfm_lookback_days=(
            DEFAULT_RFM_LOOKBACK_DAYS if rfm_lookback_days is None else rfm_lookback_days
        ),
        referral=(
            DEFAULT_REFERRAL_TERMS
            if referral_advocate_points is None
            or referral_friend_points is None
            or referral_min_subtotal is None
            or referral_review_days is None
            else ReferralTerms(
                referral_advocate_points,
                referral_friend_points,
                referral_min_subtotal,
                referral_review_days,
            )
        ),
    )


MERCHANT_ROW = kwargs_row(_merchant)


def upsert_merchant(
    conn: psycopg.Connection[tuple[object, ...]],
    key: str,
    *,
    shop: str,
    secret: str,
    points_per_unit: Decimal,
    locale: str,
    settings: SettingsUpdate | None = None,
) -> MerchantSummary:
    """Create or update the merchant and its program settings, in one transaction."""
    if not secret:
        raise ValueError("the webhook secret must not be empty")
    if points_per_unit < 0:
        raise ValueError("points per unit must not be negative")
    shop = ids.normalize_shop(shop)
    merchant_id = ids.merchant_id(shop)
    update = settings or SettingsUpdate()
    with conn.cursor(row_factory=class_row(MerchantSummary)) as cur:
        row = cur.execute(
            UPSERT,
            {
                "id": merchant_id,
                "shop": shop,
                "secret": secret,
                "key": key,
                "ppu": points_per_unit,
                "locale": locale,
            },
        ).fetchone()
    with conn.cursor(row_factory=class_row(_StoredSettings)) as cur:
        stored = cur.execute(
            UPSERT_SETTINGS,
            {
                "id": merchant_id,
                "pending": update.pending_days,
                "expiry": None if update.expiry is None else str(update.expiry),
                "warning": update.warning_days,
                "lookback": update.rfm_lookback_days,
                "advocate": update.referral_advocate_points,
                "friend": update.referral_friend_points,
                "min_subtotal": update.referral_min_subtotal,
                "review": update.referral_review_days,
                "default_pending": Policy.pending_days,
                "default_expiry": str(NO_EXPIRY),
                "default_warning": DEFAULT_WARNING_DAYS,
                "default_lookback": DEFAULT_RFM_LOOKBACK_DAYS,
                "default_advocate": DEFAULT_REFERRAL_TERMS.advocate_points,
                "default_friend": DEFAULT_REFERRAL_TERMS.friend_points,
                "default_min_subtotal": DEFAULT_REFERRAL_TERMS.min_subtotal,
                "default_review": DEFAULT_REFERRAL_TERMS.review_days,
            },
        ).fetchone()
    assert row is not None
    assert stored is not None
    problem = terms_problem(stored.pending_days, Expiry.parse(stored.expiry), stored.warning_days)
    if problem is not None:
        conn.rollback()  # nothing stored: neither the merchant nor its settings change
        raise ValueError(problem)
    conn.commit()
    return replace(
        row,
        pending_days=stored.pending_days,
        expiry=Expiry.parse(stored.expiry),
        warning_days=stored.warning_days,
        rfm_lookback_days=stored.rfm_lookback_days,
        referral=ReferralTerms(
            stored.referral_advocate_points,
            stored.referral_friend_points,
            stored.referral_min_subtotal,
            stored.referral_review_days,
        ),
    )


@dataclass(frozen=True)
class _StoredSettings:
    pending_days: int
    expiry: str
    warning_days: int
    rfm_lookback_days: int
    referral_advocate_points: int
    referral_friend_points: int
    referral_min_subtotal: Decimal
    referral_review_days: int


BY_SHOP = SELECT.format(where="shop_domain = %(shop)s")


def _by_shop(key: str, shop: str) -> dict[str, str]:
    return {"key": key, "shop": ids.normalize_shop(shop)}


def merchant_by_shop(
    conn: psycopg.Connection[tuple[object, ...]], key: str, shop: str
) -> Merchant | None:
    with conn.cursor(row_factory=MERCHANT_ROW) as cur:
        return cur.execute(BY_SHOP, _by_shop(key, shop)).fetchone()


async def merchant_by_shop_pooled(pool: Pool, key: str, shop: str) -> Merchant | None:
    """The same lookup on a connection of the API's pool (PoolTimeout if none frees up in time,
    an OperationalError if PostgreSQL cannot be reached)."""
    async with pool.connection() as conn, conn.cursor(row_factory=MERCHANT_ROW) as cur:
        await cur.execute(BY_SHOP, _by_shop(key, shop))
        return await cur.fetchone()
