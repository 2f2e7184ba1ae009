-- Fewer index entries per event. An event id is new with each event (UUIDv7), so its unique
-- index only cost an entry per row: rows are found by their key. Sent rows are pruned from the
-- oldest by key (ids grow with time), not through an index on sent_at that every stamp had to
-- update.
ALTER TABLE messaging_outbox DROP CONSTRAINT messaging_outbox_event_id_key;
DROP INDEX messaging_outbox_sent_at;
