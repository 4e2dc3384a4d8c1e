-- Named queries of the open-data API; values are always parameters.

-- name: live_lots
-- The current state of the given lots (closed: as ingest last derived it, which knows of
-- operators' closures, or closed or reserved by a console event at ``now``, which ingest
-- learns at its next pass), an operator's capacity limit in force, and, per lot, the newest live
-- 30-minute forecast whose target still lies ahead (a newer run always has the later target, so it is the newest run).
SELECT p.lot_id, s.free, s.occupied, s.updated, s.quality, s.flags,
       s.status = 'closed' OR EXISTS (
           SELECT FROM events AS e
           WHERE p.lot_id = ANY(e.closed_lots || e.reserved_lots)
             AND e.starts <= %(now)s AND e.ends > %(now)s) AS closed,
       c.capacity AS capacity_limit,
       f.time AS forecast_origin, f.target_time AS forecast_target,
       round(f.free::numeric, 2)::float8 AS forecast_free,
       round(f.free_p10::numeric, 2)::float8 AS forecast_free_p10,
       round(f.free_p90::numeric, 2)::float8 AS forecast_free_p90,
       round(f.p_space::numeric, 3)::float8 AS forecast_p_space, f.model AS forecast_model
FROM unnest(%(lot_ids)s::text[]) AS p (lot_id)
LEFT JOIN lot_state AS s ON s.lot_id = p.lot_id
LEFT JOIN lot_capacity_limits AS c ON c.lot_id = p.lot_id AND c.until > %(now)s
LEFT JOIN LATERAL (
    SELECT x.time, x.target_time, x.free, x.free_p10, x.free_p90, x.p_space, x.model
    FROM forecasts AS x
    WHERE x.lot_id = p.lot_id AND x.horizon_min = 30 AND x.target_time > %(now)s
      AND x.kind = 'live'
    ORDER BY x.time DESC
    LIMIT 1
) AS f ON TRUE;

-- name: special_bays
-- Per lot and bay kind other than standard: the bays, and of them the occupied and the
-- stuck ones, by the rule ingest counts a lot's free bays with (bay_status).
SELECT lot_id, kind, count(*) AS bays, count(*) FILTER (WHERE occupied) AS occupied,
       count(*) FILTER (WHERE stuck) AS stuck
FROM bay_status(%(now)s)
WHERE lot_id = ANY(%(lot_ids)s) AND kind <> 'standard'
GROUP BY lot_id, kind;

-- name: occupancy_raw
-- Every stored reading of the lots in [from, to), as one-sample buckets.
SELECT lot_id, time, occupied::float8 AS occupied, free::float8 AS free, free AS free_min,
       capacity, 1::bigint AS samples
FROM lot_occupancy
WHERE lot_id = ANY(%(lot_ids)s) AND time >= %(from)s AND time < %(to)s
ORDER BY lot_id, time;

-- name: occupancy_15m
-- 15-minute buckets starting in [from, to), from the continuous aggregate (a view without
-- TimescaleDB). Means are rounded to hundredths: the aggregate stores them as real, whose
-- binary noise (12.300000190734863) is no information. Rounded in float8 (ties to even), not
-- through numeric: a year of buckets would spend most of its time converting.
SELECT lot_id, bucket AS time, round(occupied::float8 * 100) / 100 AS occupied,
       round(free::float8 * 100) / 100 AS free, free_min, capacity, samples
FROM lot_occupancy_15m
WHERE lot_id = ANY(%(lot_ids)s) AND bucket >= %(from)s AND bucket < %(to)s
ORDER BY lot_id, bucket;

-- name: occupancy_1h
-- Hourly buckets starting in [from, to), as occupancy_15m.
SELECT lot_id, bucket AS time, round(occupied::float8 * 100) / 100 AS occupied,
       round(free::float8 * 100) / 100 AS free, free_min, capacity, samples
FROM lot_occupancy_1h
WHERE lot_id = ANY(%(lot_ids)s) AND bucket >= %(from)s AND bucket < %(to)s
ORDER BY lot_id, bucket;

-- name: occupancy_1d
-- Local calendar days (time zone ``tz``) built from the hourly aggregate: hours nest in local
-- days wherever the UTC offset is whole hours. Means are weighted by each hour's samples, so a
-- day's mean is the mean of its readings.
SELECT lot_id, date_trunc('day', bucket, %(tz)s) AS time,
       round(sum(occupied::float8 * samples) / sum(samples) * 100) / 100 AS occupied,
       round(sum(free::float8 * samples) / sum(samples) * 100) / 100 AS free,
       min(free_min) AS free_min, max(capacity) AS capacity, sum(samples)::bigint AS samples
FROM lot_occupancy_1h
WHERE lot_id = ANY(%(lot_ids)s) AND bucket >= %(from)s AND bucket < %(to)s
GROUP BY lot_id, date_trunc('day', bucket, %(tz)s)
ORDER BY lot_id, time;

-- name: latest_forecast
-- Every horizon of the lot's newest live forecast run (reals rounded as the aggregates are;
-- backtest forecasts are for the published error, never the current forecast).
SELECT time, horizon_min, target_time, round(free::numeric, 2)::float8 AS free,
       round(free_p10::numeric, 2)::float8 AS free_p10,
       round(free_p90::numeric, 2)::float8 AS free_p90,
       round(p_space::numeric, 3)::float8 AS p_space, model
FROM forecasts
WHERE lot_id = %(lot_id)s AND kind = 'live'
  AND time = (SELECT max(time) FROM forecasts WHERE lot_id = %(lot_id)s AND kind = 'live')
ORDER BY horizon_min;

-- name: schema_version
-- The newest migration the database has.
SELECT max(version) AS version FROM schema_migrations;

