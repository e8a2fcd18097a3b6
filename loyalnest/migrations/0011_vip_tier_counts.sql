-- Each merchant's customers per tier, as the tiers flow counts them from its customers' moves
-- (loyalty/tier_counts.py): what GET /v1/tiers/counts reads, one row, no counting per request.
-- `counts` maps a tier's name to its customers; "" counts the customers without a tier.
CREATE TABLE IF NOT EXISTS vip_tier_counts (
    merchant_id uuid PRIMARY KEY,
    counts      jsonb NOT NULL,
    customers   int NOT NULL,
    updated_at  timestamptz NOT NULL  -- the latest input time the counts include
);
