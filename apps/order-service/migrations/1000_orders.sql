CREATE TABLE orders (
    order_id            UUID PRIMARY KEY,
    saga_id             UUID NOT NULL UNIQUE,
    customer_id         TEXT NOT NULL,
    -- [{productId, quantity, unitPrice, totalPrice}], as taken
    items               JSONB NOT NULL,
    total_amount        NUMERIC(15, 2) NOT NULL CHECK (total_amount > 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    cancellation_reason TEXT,
    cancellation_detail TEXT,
    payment_id          UUID,
    reservation_id      UUID,
    idempotency_key     TEXT UNIQUE,
    -- the validated request, to tell a retry (same body) from a conflicting reuse of the key
    request             JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id, order_id DESC);
CREATE INDEX orders_status ON orders (status, order_id DESC);
