-- Named queries of the console's monthly report (api/_reports.py). Each reads one city's lots
-- or signs (their ids as a parameter) over [from, until): the month's bounds in the city's
-- time zone, ``until`` the month's end or, for the month under way, now. Values are always
-- parameters.

-- name: occupancy
-- Per lot: its 15-minute buckets in the period (lot_occupancy_15m), their mean occupancy in cars
-- and as a share of the bucket's capacity, the fullest bucket (by share) with its start, and the
-- share of buckets more than 85 percent full; every bucket weighs the same, so means and shares are
-- shares of the time the lot had data (a bucket is a quarter hour in every time zone's month).
WITH buckets AS (
    SELECT b.lot_id, b.bucket, b.occupied::float8 AS occupied,
           b.occupied::float8 / nullif(b.capacity, 0) AS rate
    FROM lot_occupancy_15m AS b
    WHERE b.lot_id = ANY(%(lot_ids)s) AND b.bucket >= %(from)s AND b.bucket < %(until)s
)
SELECT p.lot_id, count(b.bucket) AS buckets, avg(b.occupied) AS mean_occupied,
       avg(b.rate) AS mean_rate,
       (array_agg(b.occupied ORDER BY b.rate DESC NULLS LAST, b.bucket))[1] AS peak_occupied,
       max(b.rate) AS peak_rate,
       (array_agg(b.bucket ORDER BY b.rate DESC NULLS LAST, b.bucket))[1] AS peak_at,
       (count(*) FILTER (WHERE b.rate > %(above)s))::float8
           / nullif(count(b.rate), 0) AS share_above
FROM unnest(%(lot_ids)s::text[]) AS p (lot_id)
LEFT JOIN buckets AS b ON b.lot_id = p.lot_id
GROUP BY p.lot_id
ORDER BY p.lot_id;

-- name: lot_state
-- Per lot: its quality score and flags now (lot_state keeps no history of them).
SELECT p.lot_id, s.quality::float8 AS quality, coalesce(s.flags, '{}') AS flags
FROM unnest(%(lot_ids)s::text[]) AS p (lot_id)
LEFT JOIN lot_state AS s ON s.lot_id = p.lot_id
ORDER BY p.lot_id;

-- name: bay_quality
-- Per lot counted by bays: its bays, how many were silent at some time in the period (nothing
-- heard, neither a reading nor radio health, for four staleness limits: sensor_status's rule)
-- and how many were stuck at some time in it (one state held longer than the lot allows:
-- bay_stuck). A bay's span before its first message of the period starts at its last message
-- before (or at ``from`` if it had none): a bay never heard is silent.
WITH bay AS (
    SELECT b.bay_id, b.lot_id, l.stale_after_s, l.max_dwell_s, l.max_idle_s
    FROM bays AS b
    JOIN lots AS l ON l.lot_id = b.lot_id
    WHERE b.lot_id = ANY(%(lot_ids)s)
), heard AS (
    SELECT e.bay_id, e.time
    FROM bay_events AS e JOIN bay ON bay.bay_id = e.bay_id
    WHERE e.time >= %(from)s AND e.time < %(until)s
    UNION ALL
    SELECT h.sensor_id, h.time
    FROM sensor_health AS h JOIN bay ON bay.bay_id = h.sensor_id
    WHERE h.time >= %(from)s AND h.time < %(until)s
    UNION ALL
    SELECT bay.bay_id, coalesce(greatest(
        (SELECT max(e.time) FROM bay_events AS e
         WHERE e.bay_id = bay.bay_id AND e.time < %(from)s),
        (SELECT max(h.time) FROM sensor_health AS h
         WHERE h.sensor_id = bay.bay_id AND h.time < %(from)s)), %(from)s::timestamptz)
    FROM bay
), gaps AS (
    SELECT bay_id, time,
           lead(time, 1, %(until)s::timestamptz) OVER (PARTITION BY bay_id ORDER BY time) AS next
    FROM heard
), readings AS (
    SELECT e.bay_id, e.time, e.occupied
    FROM bay_events AS e JOIN bay ON bay.bay_id = e.bay_id
    WHERE e.time >= %(from)s AND e.time < %(until)s
    UNION ALL
    SELECT bay.bay_id, p.time, p.occupied
    FROM bay
    CROSS JOIN LATERAL (
        SELECT e.time, e.occupied FROM bay_events AS e
        WHERE e.bay_id = bay.bay_id AND e.time < %(from)s
        ORDER BY e.time DESC
        LIMIT 1
    ) AS p
), changes AS (
    SELECT bay_id, time, occupied,
           occupied IS DISTINCT FROM lag(occupied) OVER (PARTITION BY bay_id ORDER BY time)
               AS changed
    FROM readings
), runs AS (
    SELECT bay_id, occupied, time AS since,
           lead(time, 1, %(until)s::timestamptz) OVER (PARTITION BY bay_id ORDER BY time)
               AS until
    FROM changes
    WHERE changed
)
SELECT bay.lot_id, count(*) AS bays,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM gaps AS g
           WHERE g.bay_id = bay.bay_id
             AND greatest(%(from)s::timestamptz,
                          g.time + make_interval(secs => 4 * bay.stale_after_s))
                 < least(g.next, %(until)s::timestamptz))) AS silent,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM runs AS r
           WHERE r.bay_id = bay.bay_id AND r.until > %(from)s
             AND bay_stuck(r.occupied, r.since, bay.max_dwell_s, bay.max_idle_s, r.until)))
           AS stuck
FROM bay
GROUP BY bay.lot_id
ORDER BY bay.lot_id;

-- name: sign_availability
-- Per sign: for how many seconds of the period its latest push had gone through (the sign
-- answered and acknowledged it: sign_log.ok), for how many any push was known (the state at
-- ``from`` is the last push before it), and its pushes and failed pushes in the period.
WITH pushes AS (
    SELECT g.sign_id, g.time, g.ok, true AS in_period
    FROM sign_log AS g
    WHERE g.sign_id = ANY(%(sign_ids)s) AND g.time >= %(from)s AND g.time < %(until)s
    UNION ALL
    SELECT s.sign_id, %(from)s::timestamptz, p.ok, false
    FROM unnest(%(sign_ids)s::text[]) AS s (sign_id)
    CROSS JOIN LATERAL (
        SELECT g.ok FROM sign_log AS g
        WHERE g.sign_id = s.sign_id AND g.time < %(from)s
        ORDER BY g.time DESC
        LIMIT 1
    ) AS p
), spans AS (
    SELECT sign_id, ok, in_period,
           extract(epoch FROM lead(time, 1, %(until)s::timestamptz)
               OVER (PARTITION BY sign_id ORDER BY time, in_period) - time)::float8 AS seconds
    FROM pushes
)
SELECT s.sign_id, coalesce(sum(p.seconds) FILTER (WHERE p.ok), 0)::float8 AS ok_s,
       coalesce(sum(p.seconds), 0)::float8 AS known_s,
       count(*) FILTER (WHERE p.in_period) AS pushes,
       count(*) FILTER (WHERE p.in_period AND NOT p.ok) AS failed_pushes
FROM unnest(%(sign_ids)s::text[]) AS s (sign_id)
LEFT JOIN spans AS p ON p.sign_id = s.sign_id
GROUP BY s.sign_id
ORDER BY s.sign_id;

-- name: forecast_error
-- Per lot and horizon: the mean absolute error of the forecasts (live and backtest, the latter
-- counted apart) whose target time lies in the period, scored by the published error's rule
-- (forecasting's refresh_accuracy): against the latest reading at or before the target time,
-- at most 15 minutes earlier; targets without one are not scored. (The bound on ``f.time``
-- lets TimescaleDB skip old chunks; it assumes horizons of at most a day.)
SELECT f.lot_id, f.horizon_min, avg(abs(f.free - o.free))::float8 AS mae,
       avg(abs(f.free - o.free) / nullif(o.capacity, 0))::float8 AS mae_rate,
       count(*) AS points, count(*) FILTER (WHERE f.kind = 'backtest') AS backtest_points
FROM forecasts AS f
CROSS JOIN LATERAL (
    SELECT r.free, r.capacity FROM lot_occupancy AS r
    WHERE r.lot_id = f.lot_id AND r.time <= f.target_time
      AND r.time >= f.target_time - INTERVAL '15 minutes'
    ORDER BY r.time DESC
    LIMIT 1
) AS o
WHERE f.lot_id = ANY(%(lot_ids)s) AND f.target_time >= %(from)s AND f.target_time < %(until)s
  AND f.time >= %(from)s::timestamptz - INTERVAL '1 day' AND f.time < %(until)s
GROUP BY f.lot_id, f.horizon_min
ORDER BY f.lot_id, f.horizon_min;
