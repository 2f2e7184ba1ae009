-- What every database's seed shares (scripts/seed.sh, and the e2e test of rows read per order):
-- i is an order's number (1..@ORDERS@), at(i) its time, spread evenly over the past @DAYS@ days
-- before @NOW@ (seconds since 1970), the same in every database, since ids are made from it.
CREATE OR REPLACE FUNCTION pg_temp.at(i bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS
  $$ SELECT to_timestamp(@NOW@) - make_interval(days => @DAYS@)
              + (i::float8 / @ORDERS@) * make_interval(days => @DAYS@) $$;
-- A UUIDv7-shaped id: the time's milliseconds, then what (k) and which order (i).
CREATE OR REPLACE FUNCTION pg_temp.id(i bigint, k int) RETURNS uuid LANGUAGE sql AS
  $$ SELECT (lpad(to_hex((extract(epoch FROM pg_temp.at(i)) * 1000)::bigint), 12, '0') || '7'
              || lpad(to_hex(k), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid $$;
CREATE OR REPLACE FUNCTION pg_temp.cancelled(i bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT i % 10 = 0 $$;
CREATE OR REPLACE FUNCTION pg_temp.product(i bigint) RETURNS text LANGUAGE sql AS
  $$ SELECT 'seed-' || (i % 100) $$;
CREATE OR REPLACE FUNCTION pg_temp.in_inbox(i bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT pg_temp.at(i) > to_timestamp(@NOW@) - interval '8 days' $$;
CREATE OR REPLACE FUNCTION pg_temp.in_outbox(i bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT pg_temp.at(i) > to_timestamp(@NOW@) - interval '1 day' $$;
-- A sent outbox row of event k of order i, of type t, written d after the order (bodies are
-- envelope-sized; they are never published again by the benchmark).
CREATE OR REPLACE FUNCTION pg_temp.sent(i bigint, k int, t text, d interval)
  RETURNS TABLE (event_id uuid, subject text, body bytea, created_at timestamptz, sent_at timestamptz)
  LANGUAGE sql AS
  $$ SELECT pg_temp.id(i, k), t || '.v1',
              convert_to(jsonb_build_object('eventId', pg_temp.id(i, k), 'eventType', t,
                                            'version', 1, 'payload', repeat('x', 480))::text, 'UTF8'),
              pg_temp.at(i) + d, pg_temp.at(i) + d + interval '2 ms' $$;
SET synchronous_commit = off;
