-- In every database: the admin calls of the period (50 a day), and messages dead-lettered by the
-- service's consumers (one order in 100,000), kept for the streams' 7 days plus one.
INSERT INTO admin_audit (at, action, target, detail, actor)
SELECT to_timestamp(@NOW@) - make_interval(days => @DAYS@) + (j::float8 / (50 * @DAYS@)) * make_interval(days => @DAYS@),
       'stock.set', 'seed-' || (j % 100), 'seeded', 'token:seed'
FROM generate_series(1, 50 * @DAYS@) AS j;
INSERT INTO messaging_dead_letters (consumer, stream, stream_sequence, reason, dead_at)
SELECT 'seed-consumer', 'ORDERS', i, 'RETRIES_EXHAUSTED', pg_temp.at(i)
FROM generate_series(1, @ORDERS@) AS i WHERE i % 100000 = 7 AND pg_temp.in_inbox(i);
ANALYZE admin_audit, messaging_dead_letters;
