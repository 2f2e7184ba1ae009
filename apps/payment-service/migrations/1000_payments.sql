CREATE TABLE payments (
    payment_id  UUID PRIMARY KEY,
    -- at most one charge per order, whatever the redeliveries
    order_id    UUID NOT NULL UNIQUE,
    saga_id     UUID NOT NULL,
    amount      NUMERIC(15, 2) NOT NULL CHECK (amount >= 0),
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('CONFIRMED', 'FAILED', 'REFUNDED')),
    reason      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Orders cancelled before this service saw them created: they must never be charged.
CREATE TABLE cancelled_orders (
    order_id     UUID PRIMARY KEY,
    cancelled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
