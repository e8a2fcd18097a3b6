-- Customers' personal data (issue 10). The raw email stays encrypted in `email` (pgcrypto, as
-- merchants' webhook secrets are); fraud checks and lookups use keyed hashes of the normalized
-- email, name and default address (loyalty/pii.py), never raw values. `updated_at` follows
-- every change to a row, whoever makes it (seed 003's trg_customers_updated_at).
ALTER TABLE customers
    ADD COLUMN IF NOT EXISTS email_hash text,
    ADD COLUMN IF NOT EXISTS name_hash text,
    ADD COLUMN IF NOT EXISTS address_hash text;

CREATE INDEX IF NOT EXISTS idx_customers_merchant_email_hash
    ON customers (merchant_id, email_hash);

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_customers_updated_at BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
