CREATE TABLE sagas (
    saga_id             UUID PRIMARY KEY,
    order_id            UUID NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('STARTED', 'COMPLETED', 'COMPENSATING', 'COMPENSATED', 'FAILED')),
    reason              TEXT,
    payment_status      TEXT NOT NULL,
    payment_id          UUID,
    inventory_status    TEXT NOT NULL,
    reservation_id      UUID,
    -- why the order was cancelled, once it was
    order_cancelled     TEXT,
    deadline            TIMESTAMPTZ NOT NULL,
    compensating_since  TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sagas_order ON sagas (order_id);
CREATE INDEX sagas_status ON sagas (status, saga_id DESC);
CREATE INDEX sagas_deadline ON sagas (deadline) WHERE status = 'STARTED';
CREATE INDEX sagas_compensating ON sagas (compensating_since) WHERE status = 'COMPENSATING';

-- Every event the coordinator saw or emitted for a saga.
CREATE TABLE saga_history (
    saga_id     UUID NOT NULL REFERENCES sagas (saga_id),
    event_id    UUID NOT NULL,
    event_type  TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (saga_id, event_id)
);
