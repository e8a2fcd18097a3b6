-- VIP tiers. A merchant's configuration is a history of versions, never edited in place: each
-- `loyalnest tiers set` / PUT /v1/tiers adds one, in force from its `effective_at` (a few
-- seconds after it was saved), so the tiers flow decides every order change under the
-- version in force at its time, and a replay decides the same.
CREATE TABLE IF NOT EXISTS vip_tier_programs (
    merchant_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    version      int NOT NULL CONSTRAINT vip_tier_programs_version_positive CHECK (version > 0),
    metric       text NOT NULL
        CONSTRAINT vip_tier_programs_metric_known
            CHECK (metric IN ('points_earned', 'amount_spent')),
    period       text NOT NULL
        CONSTRAINT vip_tier_programs_period_known
            CHECK (period IN ('lifetime', 'calendar_year', 'rolling_12_months')),
    effective_at timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, version)
);

-- The seed's table: one row per tier of a version, its settings in `config`.
CREATE TABLE IF NOT EXISTS vip_tiers (
    id          bigserial PRIMARY KEY,
    merchant_id uuid NOT NULL,
    version     int NOT NULL,
    position    smallint NOT NULL,  -- 0 for the lowest threshold
    tier_id     uuid NOT NULL,  -- loyalty.tier_customers.tier_id(merchant, name)
    config      jsonb NOT NULL,  -- {"name", "threshold", "multiplier", "entry_bonus"}
    FOREIGN KEY (merchant_id, version)
        REFERENCES vip_tier_programs (merchant_id, version) ON DELETE CASCADE,
    UNIQUE (merchant_id, version, position)
);

CREATE INDEX IF NOT EXISTS idx_vip_tiers_merchant_id ON vip_tiers (merchant_id, version);

-- Each customer's tier as the tiers flow last decided it, with the per-order metric it was
-- decided from (connectors/tier_records.py), so the API answers status questions as of the
-- moment it is asked. `due_at`: when the clock must next reach the customer.
CREATE TABLE IF NOT EXISTS customer_tiers (
    merchant_id  uuid NOT NULL,
    customer_id  bigint NOT NULL,  -- the Shopify customer id
    tier         text,  -- the tier's name; null: no tier
    revision     int NOT NULL,
    metric       jsonb NOT NULL,
    updated_at   timestamptz NOT NULL,  -- the time of the input that changed it
    due_at       timestamptz,
    PRIMARY KEY (merchant_id, customer_id)
);

CREATE INDEX IF NOT EXISTS idx_customer_tiers_due ON customer_tiers (due_at)
    WHERE due_at IS NOT NULL;
