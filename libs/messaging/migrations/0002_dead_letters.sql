-- Messages this service sent to the DLQ. A message redelivered after JetStream's duplicate window
-- (a consumer whose acks were lost in a server crash replays from an older point) finds its row
-- here and is acked without a second dead letter.
CREATE TABLE messaging_dead_letters (
    consumer        TEXT        NOT NULL,
    stream          TEXT        NOT NULL,
    stream_sequence BIGINT      NOT NULL,
    reason          TEXT        NOT NULL,
    dead_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, stream, stream_sequence)
);
