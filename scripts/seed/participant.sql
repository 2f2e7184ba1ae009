-- payment-service's and inventory-service's databases.
-- Orders cancelled before they were seen created: one in a thousand, kept for 8 days.
INSERT INTO cancelled_orders (order_id, cancelled_at)
SELECT pg_temp.id(i, 6), pg_temp.at(i) FROM generate_series(1, @ORDERS@) AS i
WHERE i % 1000 = 3 AND pg_temp.in_inbox(i);
ANALYZE cancelled_orders;
