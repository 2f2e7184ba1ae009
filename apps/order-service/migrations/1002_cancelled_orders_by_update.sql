-- Cancelled orders by when they last changed, for the reconciliation's feed of recent
-- cancellations (GET /orders?status=CANCELLED&updatedAfter=&updatedBefore=&sort=updated): a page
-- reads a page of this index, however many orders changed in the window. `orders_updated` holds
-- every order that changed in the window, and a page read through it (with the statistics of a
-- table that grows faster than autovacuum analyzes it) walked them all for each page. Only
-- cancelled orders, a few in a hundred, so that most writes do not touch it. Built without holding
-- writes back; a failed attempt is dropped and built again.
DROP INDEX CONCURRENTLY IF EXISTS orders_cancelled_by_update;
CREATE INDEX CONCURRENTLY orders_cancelled_by_update ON orders (updated_at, order_id)
    WHERE status = 'CANCELLED';
