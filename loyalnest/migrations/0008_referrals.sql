-- Referrals as the referrals flow decides them (seed 004's table, plus what a merchant asks
-- about one): the friend, the order and the code, the advocate once known, the status and why.
-- The flow writes each change of a referral in order; `decided_at` and `status_rank` order them,
-- so a change written again after a crash never takes a referral back to an earlier status.
CREATE TABLE IF NOT EXISTS referrals (
    id                uuid PRIMARY KEY,  -- loyalty.referrals.referral_id(merchant, friend, order)
    merchant_id       uuid NOT NULL,
    customer_id       uuid NOT NULL,  -- the friend's deterministic customer UUID
    friend_id         bigint NOT NULL,  -- the friend's Shopify customer id
    code              text NOT NULL,  -- the referral link's code (referral_links.code)
    order_id          bigint NOT NULL,
    advocate_id       bigint,  -- null until the code's advocate is known
    status            text NOT NULL
        CONSTRAINT referrals_status_known
            CHECK (status IN ('pending', 'completed', 'blocked', 'revoked')),
    reason            text,
    advocate_points   int NOT NULL DEFAULT 0,
    friend_points     int NOT NULL DEFAULT 0,
    release_at        timestamptz,  -- rewards pending until then (review days)
    decided_at        timestamptz NOT NULL,  -- the time of the order change that decided it
    status_rank       smallint NOT NULL,  -- pending 0, completed and blocked 1, revoked 2
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_referrals_merchant_id ON referrals (merchant_id);
CREATE INDEX IF NOT EXISTS idx_referrals_merchant_advocate ON referrals (merchant_id, advocate_id);
CREATE INDEX IF NOT EXISTS idx_referrals_merchant_code ON referrals (merchant_id, code);

CREATE TRIGGER trg_referrals_updated_at BEFORE UPDATE ON referrals
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
