-- How far a run compared the orders cancelled in its window: the window's end, or, when the
-- window held more than RECONCILE_MAX_ORDERS, the last change it read; the next run starts
-- there. Empty for runs of earlier releases (the next run starts at their window's end).
ALTER TABLE reconcile_runs ADD COLUMN IF NOT EXISTS reached TIMESTAMPTZ;
