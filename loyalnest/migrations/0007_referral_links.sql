-- Advocates' referral codes (the seed's referral links): one per advocate, unique per merchant.
-- The API creates them (POST /v1/referrals/codes); a code never changes once given out.
CREATE TABLE IF NOT EXISTS referral_links (
    merchant_id uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    -- loyalty/referral_codes.py: 8 characters, digits 2-9 and letters without I, L and O.
    code text NOT NULL CONSTRAINT referral_links_code_form CHECK (code ~ '^[2-9A-HJKMNP-Z]{8}$'),
    advocate_id bigint NOT NULL CONSTRAINT referral_links_advocate_id_positive
        CHECK (advocate_id > 0),  -- the advocate's Shopify customer id
    customer_id uuid NOT NULL,  -- the advocate's deterministic customer UUID (customers.id)
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, code),
    CONSTRAINT referral_links_one_per_advocate UNIQUE (merchant_id, advocate_id)
);
