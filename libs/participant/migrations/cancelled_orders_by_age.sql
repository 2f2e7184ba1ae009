-- Cancelled-first orders by age, for their retention (participant::cancellations::prune). Built
-- without holding writes back; a failed attempt is dropped and built again.
DROP INDEX CONCURRENTLY IF EXISTS cancelled_orders_by_age;
CREATE INDEX CONCURRENTLY cancelled_orders_by_age ON cancelled_orders (cancelled_at);
