-- Named queries of the simulators.

-- name: create_history_staging
-- The staging table backfilled occupancy is copied into, dropped at commit.
CREATE TEMP TABLE staged_history (
    time timestamptz, lot_id text, occupied integer, free integer, capacity integer
) ON COMMIT DROP;

-- name: copy_history
-- Backfilled occupancy rows into the staging table.
COPY staged_history (time, lot_id, occupied, free, capacity) FROM STDIN

-- name: insert_history
-- The staged occupancy as history rows, a (lot, time) already stored skipped.
INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source)
SELECT time, lot_id, occupied, free, capacity, 'history' FROM staged_history
ON CONFLICT (lot_id, time) DO NOTHING;
