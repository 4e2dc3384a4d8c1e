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
-- Per lot counted by bays: its bays, and how many were silent and how many stuck at some time
-- in the period (the rule bay_faults, core/sql/rules.sql).
SELECT lot_id, count(*) AS bays, count(*) FILTER (WHERE silent) AS silent,
       count(*) FILTER (WHERE stuck) AS stuck
FROM bay_faults(%(lot_ids)s, %(from)s, %(until)s)
GROUP BY lot_id
ORDER BY lot_id;

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
-- (the view forecast_scores, as forecasting's refresh_accuracy). (The bound on ``time`` lets
-- TimescaleDB skip old chunks; it assumes horizons of at most a day.)
SELECT lot_id, horizon_min, avg(error)::float8 AS mae, avg(error_rate)::float8 AS mae_rate,
       count(*) AS points, count(*) FILTER (WHERE kind = 'backtest') AS backtest_points
FROM forecast_scores
WHERE lot_id = ANY(%(lot_ids)s) AND target_time >= %(from)s AND target_time < %(until)s
  AND time >= %(from)s::timestamptz - INTERVAL '1 day' AND time < %(until)s
GROUP BY lot_id, horizon_min
ORDER BY lot_id, horizon_min;

-- name: alarms
-- Per kind and severity: the alarms whose cause began in the period, how many a person
-- acknowledged and how long after the cause that was (minutes), and how many were still open
-- at the period's end.
SELECT kind, severity, count(*) AS raised, count(acknowledged_at) AS acknowledged,
       (avg(extract(epoch FROM acknowledged_at - since)) / 60)::float8 AS mean_minutes_to_ack,
       (max(extract(epoch FROM acknowledged_at - since)) / 60)::float8 AS max_minutes_to_ack,
       count(*) FILTER (WHERE cleared_at IS NULL OR cleared_at >= %(until)s) AS open_at_end
FROM alarms
WHERE city = %(city)s AND since >= %(from)s AND since < %(until)s
GROUP BY kind, severity
ORDER BY kind, severity;
