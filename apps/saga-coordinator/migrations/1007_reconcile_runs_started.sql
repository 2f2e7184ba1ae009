-- Runs by when they started: the next run's starting point (the newest finished run) and the
-- pruning of runs older than 30 days read a few entries of this index instead of every run kept
-- (43,200 at one a minute). Built without holding writes back; a failed attempt is dropped and
-- built again.
DROP INDEX CONCURRENTLY IF EXISTS reconcile_runs_started;
CREATE INDEX CONCURRENTLY reconcile_runs_started ON reconcile_runs (started_at);
