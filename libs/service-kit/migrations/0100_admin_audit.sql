-- Every admin call that changed something, in the database of the service that did it.
CREATE TABLE admin_audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- what was done, e.g. saga.retry, dlq.replay, stock.set
    action  TEXT NOT NULL,
    -- what it was done to, e.g. a saga id
    target  TEXT NOT NULL,
    detail  TEXT,
    -- a fingerprint of the admin token used, never the token
    actor   TEXT NOT NULL
);
