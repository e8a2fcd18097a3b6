-- A merchant's program settings (Core's table), with the terms points are held and lost under.
-- A merchant without a row has the defaults. The API reads them with the merchant, and attaches
-- them to every order webhook it accepts: a change applies from then on and never rewrites
-- history (points keep the terms they were earned under; see loyalty/policy.py).
CREATE TABLE IF NOT EXISTS program_settings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id     uuid NOT NULL UNIQUE REFERENCES merchants (id) ON DELETE CASCADE,
    rfm_thresholds  jsonb
);

ALTER TABLE program_settings
    -- Days an order's points stay pending before they can be spent.
    ADD COLUMN IF NOT EXISTS pending_days int NOT NULL DEFAULT 0
        CONSTRAINT program_settings_pending_days_range CHECK (pending_days BETWEEN 0 AND 365),
    -- none | inactivity:DAYS | lot:DAYS, DAYS 1..3650, as loyalty.policy.Expiry reads it.
    ADD COLUMN IF NOT EXISTS expiry text NOT NULL DEFAULT 'none'
        -- CASE, not AND: the cast must only ever see digits the pattern has checked.
        CONSTRAINT program_settings_expiry_form CHECK (
            CASE
                WHEN expiry = 'none' THEN true
                WHEN expiry ~ '^(inactivity|lot):[1-9][0-9]{0,3}$'
                    THEN split_part(expiry, ':', 2)::int <= 3650
                ELSE false
            END
        ),
    -- Days before points expire that the customer is warned (points.expiring).
    ADD COLUMN IF NOT EXISTS expiry_warning_days int NOT NULL DEFAULT 14
        CONSTRAINT program_settings_warning_days_range
            CHECK (expiry_warning_days BETWEEN 0 AND 365),
    ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();
