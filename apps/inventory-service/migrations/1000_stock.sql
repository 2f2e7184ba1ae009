CREATE TABLE products (
    product_id  TEXT PRIMARY KEY,
    on_hand     BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved    BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- available = on_hand - reserved never goes below zero, whatever runs concurrently
    CHECK (reserved <= on_hand)
);

CREATE TABLE reservations (
    reservation_id UUID PRIMARY KEY,
    order_id       UUID NOT NULL UNIQUE,
    saga_id        UUID NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'FAILED')),
    reason         TEXT,
    -- [{productId, quantity}], one line per product
    items          JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Orders cancelled before this service saw them created: nothing is ever reserved for them.
CREATE TABLE cancelled_orders (
    order_id     UUID PRIMARY KEY,
    cancelled_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
