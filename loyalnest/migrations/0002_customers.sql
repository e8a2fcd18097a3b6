-- Customers as Core knows them. The id is UUIDv5(shop domain, Shopify customer id), so the
-- streaming pipeline derives it without a lookup.
CREATE TABLE customers (
    id                   uuid PRIMARY KEY,
    merchant_id          uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    shopify_customer_id  bigint NOT NULL,
    email                bytea,
    rfm_score            jsonb,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, shopify_customer_id)
);

CREATE INDEX idx_customers_rfm_score ON customers USING gin (rfm_score);
