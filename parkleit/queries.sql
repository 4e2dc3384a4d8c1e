-- Queries of the composition root (the command line and the demo).

-- name: table_exists
-- Whether the schema has the table %(table)s yet (a command that needs it says to migrate).
SELECT to_regclass(%(table)s) IS NOT NULL;

-- name: demo_lots
-- The demo's report: each lot of %(city)s by name, with its free spaces, capacity and status.
SELECT l.name, s.free, s.capacity, s.status
FROM lot_state s JOIN lots l USING (lot_id)
WHERE l.city = %(city)s
ORDER BY l.name;

-- name: demo_bay_readings
-- How many bay readings are stored.
SELECT count(*) FROM bay_events;

-- name: demo_dead_letters
-- How many messages went to the dead letters (repeats counted).
SELECT coalesce(sum(occurrences), 0) FROM dead_letters;
