-- The reconciliation's runs, and the disagreements each found with what it re-sent.
CREATE TABLE reconcile_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SCHEDULE or OPERATOR
    trigger     TEXT NOT NULL,
    actor       TEXT,
    since       TIMESTAMPTZ NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    checked     BIGINT NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE TABLE reconcile_mismatches (
    run_id    BIGINT NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    order_id  UUID NOT NULL,
    saga_id   UUID NOT NULL,
    detail    TEXT NOT NULL,
    action    TEXT NOT NULL,
    PRIMARY KEY (run_id, order_id)
);
