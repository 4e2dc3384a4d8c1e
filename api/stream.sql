-- Named queries of the live stream (api/_hub.py); values are always parameters.

-- name: lot_states
-- The status of the given lots as ingest (and the admin API) last wrote and NOTIFYed it.
SELECT lot_id, free, occupied, capacity, status, updated, quality
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s);
