-- RFM: the days of orders a customer's recency, frequency and spend are computed over
-- (flows/rfm.py). The API attaches it to every order webhook it accepts, like the points terms.
ALTER TABLE program_settings
    ADD COLUMN IF NOT EXISTS rfm_lookback_days int NOT NULL DEFAULT 365
        CONSTRAINT program_settings_rfm_lookback_days_range
            CHECK (rfm_lookback_days BETWEEN 1 AND 3650);
