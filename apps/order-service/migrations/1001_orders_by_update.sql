-- Orders by when they last changed, for the reconciliation's feed of recent cancellations
-- (GET /orders?updatedAfter=). Built without holding writes back; a failed attempt is dropped
-- and built again.
DROP INDEX CONCURRENTLY IF EXISTS orders_updated;
CREATE INDEX CONCURRENTLY orders_updated ON orders (updated_at);
