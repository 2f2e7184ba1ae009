-- Events waiting to be published, written in the same transaction as the state change that
-- caused them. The relay publishes them with Nats-Msg-Id = event_id and stamps sent_at.
CREATE TABLE messaging_outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    UUID        NOT NULL UNIQUE,
    subject     TEXT        NOT NULL,
    body        BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX messaging_outbox_unsent ON messaging_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX messaging_outbox_sent_at ON messaging_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Events a consumer has handled, recorded in the same transaction as the handling's effect:
-- a redelivered event finds its row here and changes nothing.
CREATE TABLE messaging_inbox (
    consumer    TEXT        NOT NULL,
    event_id    UUID        NOT NULL,
    subject     TEXT        NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX messaging_inbox_handled_at ON messaging_inbox (handled_at);
