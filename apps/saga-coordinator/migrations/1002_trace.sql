-- The trace each saga belongs to (the W3C traceparent of the first event seen of it): what the
-- coordinator's own decisions (a timeout, an operator's action) continue, and the traceId that
-- GET /sagas/{id} shows.
ALTER TABLE sagas ADD COLUMN trace_parent TEXT;
