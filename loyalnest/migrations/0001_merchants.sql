-- Merchants (shops) and the secrets their webhooks are signed with.
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE merchants (
    id                       uuid PRIMARY KEY,
    shop_domain              text NOT NULL UNIQUE,
    -- pgp_sym_encrypt()ed with the application's key; never stored in clear.
    webhook_secret           bytea NOT NULL,
    -- Shopify may sign with the old secret for up to an hour after a rotation.
    previous_webhook_secret  bytea,
    secret_rotated_at        timestamptz,
    points_per_unit          numeric(12, 4) NOT NULL DEFAULT 1 CHECK (points_per_unit >= 0),
    locale                   text NOT NULL DEFAULT 'en',
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
