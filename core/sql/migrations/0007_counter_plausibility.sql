-- Counter plausibility: when a garage counter last jumped (a change no lot could have seen:
-- ingest re-baselined the counter and kept the count; the rule is in ingest/_state.py), and
-- garage counters as sensors of their own in sensor_state and sensor_status(at).

ALTER TABLE lot_state ADD COLUMN counter_jump_at timestamptz;

-- sensor_state and sensor_status(at) gain the counters (rules.sql, applied after the
-- migrations): their columns change, so the old ones go first.
DROP FUNCTION IF EXISTS sensor_status(timestamptz);
DROP VIEW IF EXISTS sensor_state;
