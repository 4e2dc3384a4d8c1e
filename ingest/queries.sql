-- Named queries of ingest. Staging tables are per connection and emptied at each commit.

-- name: create_staging
CREATE TEMP TABLE IF NOT EXISTS staged_bay_events (
    time timestamptz, bay_id text, occupied boolean, seq bigint, source text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_sensor_health (
    time timestamptz, sensor_id text, battery_v real, battery_pct real, rssi real, snr real,
    gateway_id text, frame_count bigint
) ON COMMIT DELETE ROWS;

-- name: copy_bay_events
COPY staged_bay_events (time, bay_id, occupied, seq, source) FROM STDIN

-- name: copy_sensor_health
COPY staged_sensor_health (time, sensor_id, battery_v, battery_pct, rssi, snr, gateway_id,
                           frame_count) FROM STDIN

-- name: insert_bay_events
INSERT INTO bay_events (time, bay_id, occupied, seq, source)
SELECT DISTINCT ON (bay_id, time) time, bay_id, occupied, seq, source
FROM staged_bay_events
ORDER BY bay_id, time
ON CONFLICT (bay_id, time) DO NOTHING;

-- Out-of-order readings never move a bay backwards: only a newer reading replaces the state.
-- name: advance_bay_state
INSERT INTO bay_state (bay_id, occupied, time)
SELECT DISTINCT ON (bay_id) bay_id, occupied, time
FROM staged_bay_events
ORDER BY bay_id, time DESC
ON CONFLICT (bay_id) DO UPDATE SET occupied = excluded.occupied, time = excluded.time
WHERE bay_state.time < excluded.time;

-- name: insert_sensor_health
INSERT INTO sensor_health (time, sensor_id, battery_v, battery_pct, rssi, snr, gateway_id,
                           frame_count)
SELECT DISTINCT ON (sensor_id, time) time, sensor_id, battery_v, battery_pct, rssi, snr,
       gateway_id, frame_count
FROM staged_sensor_health
ORDER BY sensor_id, time
ON CONFLICT (sensor_id, time) DO NOTHING;

-- name: bay_lot_counts
SELECT b.lot_id,
       count(*) FILTER (WHERE s.occupied) AS occupied,
       count(s.bay_id) AS known,
       max(s.time) AS latest
FROM bays AS b
LEFT JOIN bay_state AS s ON s.bay_id = b.bay_id
WHERE b.lot_id = ANY(%(lot_ids)s)
GROUP BY b.lot_id;

-- name: lock_lot_states
SELECT lot_id, free, occupied, status, updated, counter_entries, counter_exits, counter_time
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s)
ORDER BY lot_id
FOR UPDATE;

-- name: update_lot_state
UPDATE lot_state
SET free = %(free)s, occupied = %(occupied)s, capacity = %(capacity)s, status = %(status)s,
    updated = %(updated)s, counter_entries = %(counter_entries)s,
    counter_exits = %(counter_exits)s, counter_time = %(counter_time)s
WHERE lot_id = %(lot_id)s;

-- name: insert_lot_occupancy
INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source, entries, exits)
VALUES (%(time)s, %(lot_id)s, %(occupied)s, %(free)s, %(capacity)s, %(source)s, %(entries)s,
        %(exits)s)
ON CONFLICT (lot_id, time) DO NOTHING;

-- name: insert_dead_letter
INSERT INTO dead_letters (received, last_received, topic, payload, payload_size, digest, reason)
VALUES (%(received)s, %(received)s, %(topic)s, %(payload)s, %(payload_size)s, %(digest)s,
        %(reason)s)
ON CONFLICT (topic, digest) DO UPDATE
SET occurrences = dead_letters.occurrences + 1, last_received = excluded.last_received;

-- name: notify_lot_state
SELECT pg_notify('parkleit_lot_state', %(payload)s);

-- name: current_lot_states
SELECT lot_id, free, occupied, capacity, status, updated
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s)
ORDER BY lot_id;
