-- A reservation changes status once or twice after it is written (committed, released), which
-- touches no indexed column: with room left on its page, PostgreSQL writes the new version there
-- (a heap-only tuple) instead of adding an entry to every index.
ALTER TABLE reservations SET (fillfactor = 80);
