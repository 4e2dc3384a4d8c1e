-- Named queries of ingest. Staging tables are per connection and emptied at each commit.

-- name: create_staging
-- The staging tables a batch's readings are copied into.
CREATE TEMP TABLE IF NOT EXISTS staged_bay_events (
    time timestamptz, bay_id text, occupied boolean, seq bigint, source text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_sensor_health (
    time timestamptz, sensor_id text, battery_v real, battery_pct real, rssi real, snr real,
    gateway_id text, frame_count bigint
) ON COMMIT DELETE ROWS;

-- name: copy_bay_events
-- A batch's bay readings into the staging table.
COPY staged_bay_events (time, bay_id, occupied, seq, source) FROM STDIN

-- name: copy_sensor_health
-- A batch's radio and battery readings into the staging table.
COPY staged_sensor_health (time, sensor_id, battery_v, battery_pct, rssi, snr, gateway_id,
                           frame_count) FROM STDIN

-- name: insert_bay_events
-- The staged bay readings, a redelivered one (same bay and time) once.
INSERT INTO bay_events (time, bay_id, occupied, seq, source)
SELECT DISTINCT ON (bay_id, time) time, bay_id, occupied, seq, source
FROM staged_bay_events
ORDER BY bay_id, time
ON CONFLICT (bay_id, time) DO NOTHING;

-- name: advance_bay_state
-- Out-of-order readings never move a bay backwards: only a newer reading replaces the state.
-- ``since`` is when the state last changed (a state held far too long is a stuck sensor): the
-- first reading of the state after the newest one of the other state. That one can be the
-- old state, or in this batch: a bay freed and taken again within one batch (a backlog, a
-- replay), or a reading of the other state arriving late, after ``since``. Only then is
-- bay_events looked up (from that reading on); otherwise ``since`` stays. Rows go in bay order,
-- the order every worker locks them in: two workers' batches would deadlock otherwise.
WITH batch AS (
    SELECT bay_id, (array_agg(occupied ORDER BY time DESC))[1] AS occupied,
           max(time) AS time, max(time) FILTER (WHERE occupied) AS last_occupied,
           max(time) FILTER (WHERE NOT occupied) AS last_free
    FROM staged_bay_events
    GROUP BY bay_id
), merged AS (
    SELECT b.bay_id, s.occupied AS old_occupied, s.since AS old_since,
           CASE WHEN s.time >= b.time THEN s.occupied ELSE b.occupied END AS occupied,
           greatest(s.time, b.time) AS time,
           b.last_occupied, b.last_free, s.time AS old_time
    FROM batch AS b
    LEFT JOIN bay_state AS s ON s.bay_id = b.bay_id
), turned AS (
    SELECT m.bay_id, m.occupied, m.time, m.old_occupied, m.old_since,
           greatest(CASE WHEN m.old_occupied <> m.occupied THEN m.old_time END,
                    CASE WHEN m.occupied THEN m.last_free ELSE m.last_occupied END) AS other
    FROM merged AS m
)
INSERT INTO bay_state (bay_id, occupied, time, since)
SELECT t.bay_id, t.occupied, t.time,
       CASE WHEN t.old_occupied = t.occupied AND (t.other IS NULL OR t.other < t.old_since)
            THEN t.old_since
            ELSE coalesce((SELECT min(e.time) FROM bay_events AS e
                           WHERE e.bay_id = t.bay_id AND e.occupied = t.occupied
                             AND e.time > coalesce(t.other, '-infinity'::timestamptz)),
                          t.time)
       END
FROM turned AS t
ORDER BY t.bay_id
ON CONFLICT (bay_id) DO UPDATE
SET occupied = excluded.occupied, time = excluded.time, since = excluded.since
WHERE (bay_state.occupied, bay_state.time, bay_state.since)
      IS DISTINCT FROM (excluded.occupied, excluded.time, excluded.since);

-- name: insert_sensor_health
-- The staged radio and battery readings, a redelivered one once.
INSERT INTO sensor_health (time, sensor_id, battery_v, battery_pct, rssi, snr, gateway_id,
                           frame_count)
SELECT DISTINCT ON (sensor_id, time) time, sensor_id, battery_v, battery_pct, rssi, snr,
       gateway_id, frame_count
FROM staged_sensor_health
ORDER BY sensor_id, time
ON CONFLICT (sensor_id, time) DO NOTHING;

-- name: bay_lot_counts
-- Per bay-counted lot at time %(now)s: bays counted occupied, stuck ones (left out of the
-- count), bays heard from recently, bays heard from at all, and the newest reading.
SELECT lot_id, count(*) FILTER (WHERE occupied) AS occupied, count(*) FILTER (WHERE stuck) AS stuck,
       count(*) FILTER (WHERE fresh) AS fresh, count(heard) AS known, max(heard) AS latest
FROM bay_status(%(now)s)
WHERE lot_id = ANY(%(lot_ids)s)
GROUP BY lot_id;

-- name: lock_lot_states
-- The lots' current state, locked until the batch commits.
SELECT lot_id, free, occupied, capacity, status, updated, counter_entries, counter_exits,
       counter_time, quality, flags, rezeroed_on, drift, counter_jump_at, corrected_at
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s)
ORDER BY lot_id
FOR UPDATE;

-- name: operator_closures
-- The lots among the given ones that an operator closed, or that an event of the console
-- closes or reserves, at ``now``. A statement of its own after lock_lot_states: it sees a
-- closure committed while ingest waited for the lock.
SELECT lot_id
FROM lot_closures
WHERE lot_id = ANY(%(lot_ids)s) AND (until IS NULL OR until > %(now)s)
UNION
SELECT e.lot_id
FROM events, unnest(closed_lots || reserved_lots) AS e (lot_id)
WHERE e.lot_id = ANY(%(lot_ids)s) AND starts <= %(now)s AND ends > %(now)s;

-- name: capacity_limits
-- The capacities operators reduced for a while, in force at ``now``, of the given lots (read
-- after lock_lot_states, as the closures are).
SELECT lot_id, capacity
FROM lot_capacity_limits
WHERE lot_id = ANY(%(lot_ids)s) AND until > %(now)s;

-- name: update_lot_states
-- One statement per batch for all lots (arrays of equal length, one element per lot).
UPDATE lot_state AS s
SET free = u.free, occupied = u.occupied, capacity = u.capacity, status = u.status,
    updated = u.updated, counter_entries = u.counter_entries,
    counter_exits = u.counter_exits, counter_time = u.counter_time, quality = u.quality,
    flags = string_to_array(u.flags, ','), rezeroed_on = u.rezeroed_on, drift = u.drift,
    counter_jump_at = u.counter_jump_at, corrected_at = u.corrected_at
FROM unnest(%(lot_id)s::text[], %(free)s::integer[], %(occupied)s::integer[],
            %(capacity)s::integer[], %(status)s::text[], %(updated)s::timestamptz[],
            %(counter_entries)s::bigint[], %(counter_exits)s::bigint[],
            %(counter_time)s::timestamptz[], %(quality)s::real[], %(flags)s::text[],
            %(rezeroed_on)s::date[], %(drift)s::integer[], %(counter_jump_at)s::timestamptz[],
            %(corrected_at)s::timestamptz[])
     AS u (lot_id, free, occupied, capacity, status, updated, counter_entries, counter_exits,
           counter_time, quality, flags, rezeroed_on, drift, counter_jump_at, corrected_at)
WHERE s.lot_id = u.lot_id;

-- name: insert_lot_occupancy
-- A batch's lot occupancy rows (arrays of equal length), each (lot, time) once.
INSERT INTO lot_occupancy (time, lot_id, occupied, free, capacity, source, entries, exits)
SELECT * FROM unnest(%(time)s::timestamptz[], %(lot_id)s::text[], %(occupied)s::integer[],
                     %(free)s::integer[], %(capacity)s::integer[], %(source)s::text[],
                     %(entries)s::bigint[], %(exits)s::bigint[])
ON CONFLICT (lot_id, time) DO NOTHING;

-- name: previous_occupancy
-- The stored row just before each (lot_id, time), in input order (NULLs where none is).
SELECT p.time, p.occupied, p.entries, p.exits
FROM unnest(%(lot_ids)s::text[], %(times)s::timestamptz[]) WITH ORDINALITY AS r (lot_id, time, n)
LEFT JOIN LATERAL (
    SELECT o.time, o.occupied, o.entries, o.exits
    FROM lot_occupancy AS o
    WHERE o.lot_id = r.lot_id AND o.time < r.time
    ORDER BY o.time DESC
    LIMIT 1
) AS p ON TRUE
ORDER BY r.n;

-- name: insert_dead_letter
-- A message ingest could not use; a repeated one counts its occurrences.
INSERT INTO dead_letters (received, last_received, topic, payload, payload_size, digest, reason)
VALUES (%(received)s, %(received)s, %(topic)s, %(payload)s, %(payload_size)s, %(digest)s,
        %(reason)s)
ON CONFLICT (topic, digest) DO UPDATE
SET occurrences = dead_letters.occurrences + 1, last_received = excluded.last_received;

-- name: notify
-- One notification per element, in array order; delivered when the transaction commits.
SELECT pg_notify(%(channel)s, payload) FROM unnest(%(payloads)s::text[]) AS payload;

-- name: current_lot_states
-- The lots' current state, by lot.
SELECT lot_id, free, occupied, capacity, status, updated
FROM lot_state
WHERE lot_id = ANY(%(lot_ids)s)
ORDER BY lot_id;
