-- Named queries of the benchmarks (core.db.queries("benchmarks")).

-- name: ingest_rows_written
-- Rows ingest has written so far: bay events, counter readings.
SELECT (SELECT count(*) FROM bay_events),
       (SELECT count(*) FROM lot_occupancy WHERE source = 'counter');

-- name: ingest_rows_distinct
-- Bay events and counter readings written, each in all and distinct (a message written twice).
SELECT (SELECT count(*) FROM bay_events),
       (SELECT count(DISTINCT (bay_id, time)) FROM bay_events),
       (SELECT count(*) FROM lot_occupancy WHERE source = 'counter'),
       (SELECT count(DISTINCT (lot_id, time)) FROM lot_occupancy WHERE source = 'counter');

-- name: notes_table
-- A table for the NOTIFYs received during the run: when each arrived, its lot and reading.
CREATE TEMP TABLE bench_notes (arrival timestamptz, lot_id text, updated timestamptz);

-- name: notes_copy
-- Fills bench_notes.
COPY bench_notes (arrival, lot_id, updated) FROM STDIN

-- name: commit_times
-- Each ingest transaction (its bay events share ``received``) with the first NOTIFY naming one
-- of its readings: when it committed.
CREATE TEMP TABLE bench_tx AS
SELECT e.received, min(n.arrival) AS committed
FROM bench_notes n JOIN bays b ON b.lot_id = n.lot_id
JOIN bay_events e ON e.bay_id = b.bay_id AND e.time = n.updated
GROUP BY e.received;
ANALYZE bench_tx;

-- name: commit_offset
-- The median seconds from a transaction's start to its commit (for those without a NOTIFY).
SELECT coalesce(percentile_cont(0.5) WITHIN GROUP
                (ORDER BY extract(epoch FROM committed - received)), 0)
FROM bench_tx;

-- name: publish_to_commit
-- Publish-to-commit latency of every bay event (p50, p99, max), the share with an exact commit
-- time, the first publish, the last commit and the first transaction's start.
WITH lat AS (
  SELECT e.time AS published,
         coalesce(t.committed, e.received + make_interval(secs => %(offset)s)) AS committed,
         t.committed IS NOT NULL AS exact
  FROM bay_events e LEFT JOIN bench_tx t USING (received))
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP
         (ORDER BY extract(epoch FROM committed - published)),
       max(extract(epoch FROM committed - published)),
       avg(exact::int), min(published), max(committed),
       (SELECT min(received) FROM bay_events)
FROM lat;

-- name: soak_bay_events
-- Every bay event stored (the soak's accounting).
SELECT bay_id, time FROM bay_events;

-- name: soak_counter_readings
-- Every counter reading stored; the re-zero rows ingest adds itself have no entries.
SELECT lot_id, time FROM lot_occupancy WHERE source = 'counter' AND entries IS NOT NULL;

-- name: soak_sensor_health
-- Every sensor health reading stored.
SELECT sensor_id, time FROM sensor_health;

-- name: soak_dead_letters
-- Every dead letter: its topic, payload digest, how often it came and why it was refused.
SELECT topic, digest, occurrences, reason FROM dead_letters;

-- name: soak_signs_failing
-- Signs whose last push failed, with the error.
SELECT sign_id, last_error FROM sign_state WHERE consecutive_failures > 0;

-- name: soak_forecast_lots
-- How many lots the newest forecast run covers.
SELECT count(DISTINCT lot_id) FROM forecasts WHERE time = (SELECT max(time) FROM forecasts);

-- name: soak_lot_counts
-- The occupied count of every lot that has one.
SELECT lot_id, occupied FROM lot_state WHERE occupied IS NOT NULL;

-- name: api_vacuum_history
-- What autovacuum would long have done with a year of history (index-only scans).
VACUUM ANALYZE lot_occupancy;

-- name: checkpoint
-- Writes the load out now rather than while the benchmark measures.
CHECKPOINT;

-- name: api_live_counts
-- Every lot counted at ``updated``, with the numbers of its newest history row.
UPDATE lot_state AS s SET free = o.free, occupied = o.occupied, status = 'open',
       updated = %(updated)s, quality = 1
FROM (SELECT DISTINCT ON (lot_id) lot_id, free, occupied FROM lot_occupancy
      ORDER BY lot_id, time DESC) AS o
WHERE o.lot_id = s.lot_id;

-- name: api_forecast_runs
-- A forecast run every 15 minutes over the day before ``now``, as the forecast service writes.
INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, free_p10, free_p90,
                       p_space, model)
SELECT r.time, l.lot_id, h.horizon, r.time + make_interval(mins => h.horizon),
       l.capacity * 0.4, l.capacity * 0.3, l.capacity * 0.5, 0.97, 'bench'
FROM lots AS l
CROSS JOIN generate_series(%(now)s - INTERVAL '1 day', %(now)s,
                           INTERVAL '15 minutes') AS r (time)
CROSS JOIN unnest(%(horizons)s::int[]) AS h (horizon);

-- name: api_analyze_forecasts
-- Planner statistics for the forecast runs just written.
ANALYZE forecasts;

-- name: notify
-- A notification on a channel, as ingest sends a lot's status.
SELECT pg_notify(%(channel)s, %(payload)s);
