-- Customers Core creates from an email alone (gRPC core.v1.CoreService/CreateCustomer, e.g. an
-- import before the customer's first order): no Shopify id yet. At most one such customer per
-- merchant and email (its keyed hash), so creating one twice gives the same customer.
ALTER TABLE customers ALTER COLUMN shopify_customer_id DROP NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS uq_customers_merchant_email_only
    ON customers (merchant_id, email_hash) WHERE shopify_customer_id IS NULL;
