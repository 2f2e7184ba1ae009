-- The trace context each event continues (a W3C traceparent), published as its NATS message's
-- traceparent header.
ALTER TABLE messaging_outbox ADD COLUMN traceparent TEXT;
