-- Most changes to a saga (a participant's answer, the order's cancellation, the deadline passing)
-- touch no indexed column, so PostgreSQL can write them as heap-only tuples: no index entry is
-- added, and the old version is reclaimed within its page. That needs two things: room on the
-- page for the new version (a fill factor below 100), and no index that names those columns. The
-- index of compensations waiting for an answer named the participants' statuses in its
-- predicate, which made every answer a full update of all eight indexes; it now covers every
-- compensation by deadline, and the sweep checks the rest of the condition on the few rows found.
ALTER TABLE sagas SET (fillfactor = 70);
DROP INDEX sagas_compensating_deadline;
CREATE INDEX sagas_compensating_deadline ON sagas (deadline) WHERE status = 'COMPENSATING';

-- The counts by status and reason are kept by the coordinator's own statements (the one that
-- creates sagas and the one that saves them add their deltas), not by statement triggers: a
-- trigger ran a PL/pgSQL function for every statement on sagas, changed or not, an eighth of
-- the database's work per event. Every write to a saga's status goes through those statements.
DROP TRIGGER sagas_counted_on_insert ON sagas;
DROP TRIGGER sagas_counted_on_update ON sagas;
DROP TRIGGER sagas_counted_on_delete ON sagas;
DROP FUNCTION saga_counts_inserted();
DROP FUNCTION saga_counts_updated();
DROP FUNCTION saga_counts_deleted();
