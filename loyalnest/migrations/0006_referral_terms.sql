-- A merchant's referral terms (loyalty/referral_terms.py), with the other program settings:
-- what the advocate and the friend get for a qualifying order, the smallest subtotal that
-- qualifies, and the days both rewards stay pending. They apply from then on.
ALTER TABLE program_settings
    ADD COLUMN IF NOT EXISTS referral_advocate_points int NOT NULL DEFAULT 500
        CONSTRAINT program_settings_referral_advocate_points_range
            CHECK (referral_advocate_points BETWEEN 0 AND 1000000),
    ADD COLUMN IF NOT EXISTS referral_friend_points int NOT NULL DEFAULT 0
        CONSTRAINT program_settings_referral_friend_points_range
            CHECK (referral_friend_points BETWEEN 0 AND 1000000),
    ADD COLUMN IF NOT EXISTS referral_min_subtotal numeric(12, 2) NOT NULL DEFAULT 0.00
        CONSTRAINT program_settings_referral_min_subtotal_range
            CHECK (referral_min_subtotal >= 0),
    ADD COLUMN IF NOT EXISTS referral_review_days int NOT NULL DEFAULT 0
        CONSTRAINT program_settings_referral_review_days_range
            CHECK (referral_review_days BETWEEN 0 AND 365);
