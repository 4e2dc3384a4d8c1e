-- The newest count of the given lots (api/_readings.py): free spaces, when they were counted,
-- and whether ingest last derived the status closed (opening hours or an operator's closure).
SELECT lot_id, free, updated, status = 'closed' AS closed
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s);
