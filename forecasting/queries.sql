-- Named queries of the forecasting service; values are always parameters.

-- name: panel_rows
-- The readings of a city's lots in (since, until] on the 15-minute grid: each reading goes to
-- the nearest grid point, the latest reading per point wins. A reading in the second half of
-- the current quarter hour would land on a point after ``until``; it is kept at the last
-- point at or before ``until`` instead, so a forecast uses the newest count and its origin
-- never lies in the future.
SELECT DISTINCT ON (o.lot_id, slot)
       o.lot_id,
       least(time_bucket(INTERVAL '15 minutes', o.time + INTERVAL '450 seconds'),
             time_bucket(INTERVAL '15 minutes', %(until)s::timestamptz)) AS slot,
       o.free, o.capacity
FROM lot_occupancy AS o
JOIN lots AS l ON l.lot_id = o.lot_id AND l.city = %(city)s
WHERE o.time > %(since)s AND o.time <= %(until)s
ORDER BY o.lot_id, slot, o.time DESC;

-- name: console_events
-- The events planners entered in the console for a city (name, the lots whose demand it
-- raises, its window), those with such lots; the forecaster takes them as the config's.
SELECT name, lots, starts, ends
FROM events
WHERE city = %(city)s AND cardinality(lots) > 0
ORDER BY starts, id;

-- name: fresh_lots
-- Lots whose newest reading up to ``now`` is within their staleness limit (stale is not free:
-- such lots get no forecast).
SELECT l.lot_id
FROM lots AS l
CROSS JOIN LATERAL (
    SELECT max(o.time) AS newest FROM lot_occupancy AS o
    WHERE o.lot_id = l.lot_id AND o.time <= %(now)s
) AS latest
WHERE l.city = %(city)s
  AND latest.newest >= %(now)s - make_interval(secs => l.stale_after_s);

-- name: insert_model
-- A trained model with its artefact.
INSERT INTO forecast_models (version, city, created_at, kind, trained_from, trained_to, lots,
                             examples, reason, metrics, artefact)
VALUES (%(version)s, %(city)s, %(created_at)s, %(kind)s, %(trained_from)s, %(trained_to)s,
        %(lots)s, %(examples)s, %(reason)s, %(metrics)s, %(artefact)s);

-- name: newest_model
-- The newest model of a city, without its artefact.
SELECT version, created_at, kind, trained_from, trained_to, lots, examples, reason, metrics
FROM forecast_models
WHERE city = %(city)s
ORDER BY created_at DESC, version DESC
LIMIT 1;

-- name: model_artefact
-- The artefact (the pickled model) of one model version.
SELECT artefact FROM forecast_models WHERE version = %(version)s;

-- name: upsert_forecast
-- A live forecast; it replaces a backtest one of the same lot, horizon and origin.
INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, free_p10, free_p90,
                       p_space, model, kind)
VALUES (%(time)s, %(lot_id)s, %(horizon_min)s, %(target_time)s, %(free)s, %(free_p10)s,
        %(free_p90)s, %(p_space)s, %(model)s, 'live')
ON CONFLICT (lot_id, horizon_min, time) DO UPDATE SET
    target_time = excluded.target_time, free = excluded.free, free_p10 = excluded.free_p10,
    free_p90 = excluded.free_p90, p_space = excluded.p_space, model = excluded.model,
    kind = excluded.kind;

-- name: first_live_forecast
-- The origin of the city's first live forecast whose target lies after ``since`` (NULL: none
-- yet); a backtest fills the published-error window before it. (The bound on ``f.time``
-- lets TimescaleDB skip old chunks; it assumes horizons of at most a day.)
SELECT min(f.time)
FROM forecasts AS f
JOIN lots AS l ON l.lot_id = f.lot_id AND l.city = %(city)s
WHERE f.kind = 'live' AND f.time > %(since)s - INTERVAL '1 day'
  AND f.target_time > %(since)s;

-- name: forecast_origins
-- The horizons and origins in [since, until] the city has forecasts of, live or backtest: a
-- backtest does not compute them again.
SELECT DISTINCT f.horizon_min, f.time
FROM forecasts AS f
JOIN lots AS l ON l.lot_id = f.lot_id AND l.city = %(city)s
WHERE f.time >= %(since)s AND f.time <= %(until)s;

-- name: create_backtest_staging
-- The staging table backtest forecasts are copied into, dropped at commit.
CREATE TEMP TABLE staged_backtest (
    time timestamptz, lot_id text, horizon_min integer, target_time timestamptz, free real,
    free_p10 real, free_p90 real, p_space real, model text
) ON COMMIT DROP;

-- name: copy_backtest
-- Backtest forecasts into the staging table.
COPY staged_backtest (time, lot_id, horizon_min, target_time, free, free_p10, free_p90,
                      p_space, model) FROM STDIN

-- name: insert_backtest
-- Backtest forecasts; a forecast of the same lot, horizon and origin (live, or an earlier
-- backtest) stays as it is, so running the backtest again adds nothing.
INSERT INTO forecasts (time, lot_id, horizon_min, target_time, free, free_p10, free_p90,
                       p_space, model, kind)
SELECT time, lot_id, horizon_min, target_time, free, free_p10, free_p90, p_space, model,
       'backtest'
FROM staged_backtest
ON CONFLICT (lot_id, horizon_min, time) DO NOTHING;

-- name: record_backtest
-- What the backtest with a model did, kept in the model's metrics.
UPDATE forecast_models SET metrics = metrics || jsonb_build_object('backtest', %(backtest)s::jsonb)
WHERE version = %(version)s;

-- name: refresh_accuracy
-- The published forecast error: per lot of the city and horizon, the mean absolute error of
-- the forecasts (live and backtest, the latter counted apart) whose target time lies in the
-- last ``window_days`` days up to ``now``, scored by the view forecast_scores (against the
-- latest reading at or before the target time, at most 15 minutes earlier; targets without
-- one are not scored). Lots and horizons with nothing left to score lose their row, so no
-- figure outlives its window. (The bound on ``s.time`` lets TimescaleDB skip old chunks; it
-- assumes horizons of at most a day.)
WITH scored AS (
    SELECT s.lot_id, s.horizon_min, avg(s.error) AS mae, avg(s.error_rate) AS mae_rate,
           count(*) AS points, count(*) FILTER (WHERE s.kind = 'backtest') AS backtest_points
    FROM forecast_scores AS s
    JOIN lots AS l ON l.lot_id = s.lot_id AND l.city = %(city)s
    WHERE s.time > %(now)s - make_interval(days => %(window_days)s + 1)
      AND s.target_time > %(now)s - make_interval(days => %(window_days)s)
      AND s.target_time <= %(now)s
    GROUP BY s.lot_id, s.horizon_min
), gone AS (
    DELETE FROM forecast_accuracy AS a
    USING lots AS l
    WHERE l.lot_id = a.lot_id AND l.city = %(city)s
      AND NOT EXISTS (SELECT 1 FROM scored AS s
                      WHERE s.lot_id = a.lot_id AND s.horizon_min = a.horizon_min)
)
INSERT INTO forecast_accuracy (lot_id, horizon_min, window_days, mae, mae_rate, points,
                               backtest_points, computed_at)
SELECT lot_id, horizon_min, %(window_days)s, mae, mae_rate, points, backtest_points, %(now)s
FROM scored
ON CONFLICT (lot_id, horizon_min) DO UPDATE SET
    window_days = excluded.window_days, mae = excluded.mae, mae_rate = excluded.mae_rate,
    points = excluded.points, backtest_points = excluded.backtest_points,
    computed_at = excluded.computed_at;

-- name: lot_accuracy
-- The published forecast error of one lot, for the API.
SELECT horizon_min, window_days, mae, mae_rate, points, backtest_points, computed_at
FROM forecast_accuracy
WHERE lot_id = %(lot_id)s
ORDER BY horizon_min;

-- name: notify
-- Heard at commit (the API reads its lots' views again).
SELECT pg_notify(%(channel)s, %(payload)s);
