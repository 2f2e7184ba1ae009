-- The inbox is keyed by the event alone. Within one service's database an event reaches one
-- consumer only: a consumer is named by its service and its subject, and an event has one
-- subject, so (consumer, event) added nothing to the key but a long text compared on every
-- insert. The consumer's name is kept, for reading.
ALTER TABLE messaging_inbox DROP CONSTRAINT messaging_inbox_pkey;
ALTER TABLE messaging_inbox ADD CONSTRAINT messaging_inbox_pkey PRIMARY KEY (event_id);
ALTER TABLE messaging_inbox DROP COLUMN subject;
