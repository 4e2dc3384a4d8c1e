-- Named queries of the planner dashboard and the kiosk (api/routers/pages.py). Times are UTC;
-- %(tz)s is the city's timezone, used only where a local calendar matters (days, hours).
-- Occupancy comes from the 15-minute and hourly aggregates (continuous aggregates under
-- TimescaleDB, views on plain PostgreSQL), never from the raw rows.

-- name: lots
-- The city's lots, by name.
SELECT lot_id, name, kind, counting, capacity
FROM lots
WHERE city = %(city)s
ORDER BY name, lot_id;

-- name: occupancy_15m
-- Occupancy of the city's lots per 15 minutes in [from, to).
SELECT o.bucket, o.lot_id, o.occupied, o.capacity
FROM lot_occupancy_15m AS o
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
ORDER BY o.bucket, o.lot_id;

-- name: occupancy_1h
-- Occupancy of the city's lots per hour in [from, to).
SELECT o.bucket, o.lot_id, o.occupied, o.capacity
FROM lot_occupancy_1h AS o
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
ORDER BY o.bucket, o.lot_id;

-- name: occupancy_1d
-- Local calendar days (23 or 25 hours at the clock changes), the hours weighted by samples.
SELECT (date_trunc('day', o.bucket AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s) AS bucket,
       o.lot_id, (sum(o.occupied * o.samples) / sum(o.samples))::real AS occupied,
       max(o.capacity) AS capacity
FROM lot_occupancy_1h AS o
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: heatmap
-- Mean occupancy (share of capacity) by local weekday (1 = Monday) and hour, of one lot or
-- (lot_id NULL) the whole city; for the city each hour's lots are summed first.
WITH hours AS (
    SELECT o.bucket, sum(o.occupied) AS occupied, sum(o.capacity) AS capacity
    FROM lot_occupancy_1h AS o
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND (%(lot_id)s::text IS NULL OR o.lot_id = %(lot_id)s::text)
      AND o.bucket >= %(from)s AND o.bucket < %(to)s
    GROUP BY o.bucket
)
SELECT extract(isodow FROM bucket AT TIME ZONE %(tz)s)::integer AS weekday,
       extract(hour FROM bucket AT TIME ZONE %(tz)s)::integer AS hour,
       avg(occupied / nullif(capacity, 0))::real AS rate, count(*) AS hours
FROM hours
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: share_above
-- Per lot, and for the city (lot_id NULL), the 15-minute periods with data and those whose
-- mean occupancy was above %(threshold)s of capacity.
WITH per_lot AS (
    SELECT o.lot_id, o.bucket, o.occupied, o.capacity
    FROM lot_occupancy_15m AS o
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
      AND o.capacity > 0
), city AS (
    SELECT bucket, sum(occupied) AS occupied, sum(capacity) AS capacity
    FROM per_lot
    GROUP BY bucket
)
SELECT lot_id, count(*) AS periods,
       count(*) FILTER (WHERE occupied / capacity > %(threshold)s) AS above
FROM per_lot
GROUP BY lot_id
UNION ALL
SELECT NULL, count(*), count(*) FILTER (WHERE occupied / capacity > %(threshold)s)
FROM city;

-- name: forecast_vs_actual
-- Forecasts of one horizon against what happened, per 15-minute target period, of one lot or
-- (lot_id NULL) summed over the city's lots. The interval is per lot only (quantiles do not
-- add up); the city's actual only where every forecast lot has one. ``backtest``: a period
-- with a backtest forecast in it (one made after the fact, see forecasting.backtest).
WITH f AS (
    SELECT f.lot_id, time_bucket(INTERVAL '15 minutes', f.target_time) AS bucket,
           avg(f.free) AS free, avg(f.free_p10) AS p10, avg(f.free_p90) AS p90,
           bool_or(f.kind = 'backtest') AS backtest
    FROM forecasts AS f
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND (%(lot_id)s::text IS NULL OR f.lot_id = %(lot_id)s::text)
      AND f.horizon_min = %(horizon)s
      AND f.target_time >= %(from)s AND f.target_time < %(to)s
    GROUP BY 1, 2
)
SELECT f.bucket, sum(f.free)::real AS forecast,
       CASE WHEN %(lot_id)s::text IS NOT NULL THEN sum(f.p10)::real END AS p10,
       CASE WHEN %(lot_id)s::text IS NOT NULL THEN sum(f.p90)::real END AS p90,
       CASE WHEN count(a.free) = count(*) THEN sum(a.free)::real END AS actual,
       bool_or(f.backtest) AS backtest
FROM f
LEFT JOIN lot_occupancy_15m AS a ON a.lot_id = f.lot_id AND a.bucket = f.bucket
GROUP BY f.bucket
ORDER BY f.bucket;

-- name: accuracy
-- The published forecast error (rolling MAE) of every lot and horizon; backtest_points of
-- its points are backtest forecasts.
SELECT a.lot_id, l.name, a.horizon_min, a.window_days, a.mae, a.mae_rate, a.points,
       a.backtest_points, a.computed_at
FROM forecast_accuracy AS a
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s
ORDER BY l.name, a.lot_id, a.horizon_min;

-- name: sensor_lots
-- Per lot: its sensors (bay sensors, or the garage counter) and how many are silent, stuck,
-- low on battery or (counters) jumped, next to the lot's current quality score and flags.
SELECT l.lot_id, l.name, l.counting, count(s.sensor_id) AS sensors,
       count(*) FILTER (WHERE s.silent) AS silent,
       count(*) FILTER (WHERE s.stuck) AS stuck,
       count(*) FILTER (WHERE s.battery_low) AS battery_low,
       count(*) FILTER (WHERE s.counter_jump) AS counter_jump,
       st.status, st.updated, st.quality, st.flags
FROM lots AS l
LEFT JOIN sensor_status(%(now)s) AS s USING (lot_id)
LEFT JOIN lot_state AS st ON st.lot_id = l.lot_id
WHERE l.city = %(city)s
GROUP BY l.lot_id, st.lot_id
ORDER BY l.name, l.lot_id;

-- name: sensor_problems
-- The city's sensors with a problem at ``now``, the worst first.
SELECT s.sensor_id, s.lot_id, s.network, s.last_seen, s.state_since, s.battery_v,
       s.battery_pct, s.rssi, s.snr, s.gateway_id, s.silent, s.stuck, s.battery_low,
       s.counter_jump
FROM sensor_status(%(now)s) AS s
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND (s.silent OR s.stuck OR s.battery_low OR s.counter_jump)
ORDER BY s.counter_jump DESC, s.battery_low DESC, s.stuck DESC, s.last_seen DESC NULLS LAST,
         s.sensor_id
LIMIT %(limit)s;

-- name: gateways
-- Every LoRaWAN gateway heard since %(since)s: when last, through how many sensors, and
-- whether it has gone silent (nothing through it for %(silent_after)s).
SELECT h.gateway_id, max(h.time) AS last_seen, count(DISTINCT h.sensor_id) AS sensors,
       max(h.time) < %(now)s::timestamptz - %(silent_after)s AS silent
FROM sensor_health AS h
JOIN bays AS b ON b.bay_id = h.sensor_id
JOIN lots AS l ON l.lot_id = b.lot_id
WHERE l.city = %(city)s AND h.gateway_id IS NOT NULL AND h.time >= %(since)s
GROUP BY h.gateway_id
ORDER BY 4 DESC, h.gateway_id;

-- name: sign_log
-- The pushes to the city's signs in [from, to), the newest first.
SELECT e.time, e.sign_id, e.content, e.ok, e.error, e.ack
FROM sign_log AS e
JOIN signs AS g USING (sign_id)
WHERE g.city = %(city)s AND e.time >= %(from)s AND e.time < %(to)s
ORDER BY e.time DESC
LIMIT %(limit)s;

-- name: city_rate
-- The city's occupancy (share of the capacity of the lots with data) per 15 minutes.
SELECT o.bucket, (sum(o.occupied) / nullif(sum(o.capacity), 0))::real AS rate
FROM lot_occupancy_15m AS o
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
GROUP BY o.bucket
ORDER BY o.bucket;

-- name: typical_day
-- The city's mean occupancy by local time of day on one weekday (1 = Monday) in the window.
WITH buckets AS (
    SELECT o.bucket, sum(o.occupied) AS occupied, sum(o.capacity) AS capacity
    FROM lot_occupancy_15m AS o
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND o.bucket >= %(from)s AND o.bucket < %(to)s
    GROUP BY o.bucket
)
SELECT (bucket AT TIME ZONE %(tz)s)::time AS clock,
       avg(occupied / nullif(capacity, 0))::real AS rate
FROM buckets
WHERE extract(isodow FROM bucket AT TIME ZONE %(tz)s) = %(weekday)s
GROUP BY 1
ORDER BY 1;

-- name: latest_forecasts
-- Per lot, every horizon of its newest live forecast run made since %(since)s.
SELECT f.lot_id, f.horizon_min, f.target_time, f.free, f.free_p10, f.free_p90
FROM forecasts AS f
JOIN (
    SELECT f2.lot_id, max(f2.time) AS time
    FROM forecasts AS f2
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND f2.time >= %(since)s AND f2.kind = 'live'
    GROUP BY f2.lot_id
) AS latest USING (lot_id, time)
WHERE f.kind = 'live'
ORDER BY f.lot_id, f.horizon_min;

-- name: evse_blocked_hours
-- Hours each charging point of ``evse_ids`` was blocked in [from, to) (rules.sql).
SELECT evse_id, blocked_hours
FROM evse_blocked_hours(%(evse_ids)s, %(blocked_after_s)s, %(from)s, %(to)s);
