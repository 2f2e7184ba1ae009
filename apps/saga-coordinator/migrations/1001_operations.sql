-- What operators need: when a saga ended, the notes of operator actions in its history, counts
-- by status and reason that cost nothing to read, and the dead letters of every service.

-- Whether the saga's deadline has passed: a COMPENSATING saga waits for a participant that has
-- not answered until then (the sweep marks it), so it is not called COMPENSATED too early.
ALTER TABLE sagas ADD COLUMN deadline_passed BOOLEAN NOT NULL DEFAULT false;
UPDATE sagas SET deadline_passed = true WHERE deadline <= now();
CREATE INDEX sagas_compensating_deadline ON sagas (deadline)
    WHERE status = 'COMPENSATING' AND NOT deadline_passed
      AND (payment_status = 'PENDING' OR inventory_status = 'PENDING');

-- When the saga last reached COMPLETED or COMPENSATED: its duration is ended_at - created_at.
ALTER TABLE sagas ADD COLUMN ended_at TIMESTAMPTZ;
CREATE INDEX sagas_ended ON sagas (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX sagas_reason ON sagas (reason, saga_id DESC) WHERE reason IS NOT NULL;

-- Operator actions (operator.retry, operator.abort) are history entries too, with who and why.
ALTER TABLE saga_history ADD COLUMN actor TEXT, ADD COLUMN detail TEXT;

-- Sagas by status and reason ('' for none): the folded totals plus the deltas not yet folded.
-- Statement triggers append deltas (no row is updated in place, so concurrent transactions never
-- wait for each other here); the coordinator folds them into the totals now and then.
CREATE TABLE saga_counts (
    status  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (status, reason)
);
CREATE TABLE saga_count_deltas (
    status  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    d       BIGINT NOT NULL
);
INSERT INTO saga_counts (status, reason, n)
    SELECT status, COALESCE(reason, ''), count(*) FROM sagas GROUP BY 1, 2;

CREATE FUNCTION saga_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO saga_count_deltas (status, reason, d)
        SELECT status, COALESCE(reason, ''), count(*) FROM new_sagas GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION saga_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO saga_count_deltas (status, reason, d)
        SELECT status, reason, sum(d) FROM (
            SELECT status, COALESCE(reason, '') AS reason, 1 AS d FROM new_sagas
            UNION ALL
            SELECT status, COALESCE(reason, ''), -1 FROM old_sagas) changes
        GROUP BY 1, 2 HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION saga_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO saga_count_deltas (status, reason, d)
        SELECT status, COALESCE(reason, ''), -count(*) FROM old_sagas GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE TRIGGER sagas_counted_on_insert AFTER INSERT ON sagas
    REFERENCING NEW TABLE AS new_sagas FOR EACH STATEMENT EXECUTE FUNCTION saga_counts_inserted();
CREATE TRIGGER sagas_counted_on_update AFTER UPDATE ON sagas
    REFERENCING OLD TABLE AS old_sagas NEW TABLE AS new_sagas
    FOR EACH STATEMENT EXECUTE FUNCTION saga_counts_updated();
CREATE TRIGGER sagas_counted_on_delete AFTER DELETE ON sagas
    REFERENCING OLD TABLE AS old_sagas FOR EACH STATEMENT EXECUTE FUNCTION saga_counts_deleted();

-- Every service's dead letters, copied from the DLQ stream: id is the message's sequence there.
CREATE TABLE dead_letters (
    id                BIGINT PRIMARY KEY,
    consumer          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    reason            TEXT NOT NULL,
    detail            TEXT,
    delivered         BIGINT,
    dead_lettered_at  TIMESTAMPTZ NOT NULL,
    event_id          UUID,
    event_type        TEXT,
    -- the original message: body as published, and its headers
    payload           BYTEA NOT NULL,
    headers           JSONB NOT NULL,
    status            TEXT NOT NULL DEFAULT 'DEAD' CHECK (status IN ('DEAD', 'REPLAYED', 'DISCARDED')),
    -- the last operator action on it: when, who, and their note
    status_at         TIMESTAMPTZ,
    status_by         TEXT,
    status_detail     TEXT
);
CREATE INDEX dead_letters_dead ON dead_letters (id) WHERE status = 'DEAD';
CREATE INDEX dead_letters_consumer ON dead_letters (consumer, id);
CREATE INDEX dead_letters_subject ON dead_letters (subject, id);
CREATE INDEX dead_letters_reason ON dead_letters (reason, id);
