-- Named queries of the city-state gauges (api/_statemetrics.py, GET /metrics/city). Small
-- reads: one row per lot, sign and (lot, horizon), plus two index-backed newest times.

-- name: lot_freshness
-- Age of each lot's newest reading (NULL: none yet) against its staleness limit.
SELECT l.lot_id, l.stale_after_s, s.status, s.quality,
       extract(epoch FROM %(now)s::timestamptz - s.updated)::float8 AS age_s
FROM lots AS l
LEFT JOIN lot_state AS s USING (lot_id)
WHERE l.city = %(city)s
ORDER BY l.lot_id;

-- name: newest_forecast
-- The newest live forecast run (its origin); ORDER BY time DESC LIMIT 1 walks the time index.
SELECT extract(epoch FROM %(now)s::timestamptz - f.time)::float8 AS age_s
FROM forecasts AS f
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND f.kind = 'live'
ORDER BY f.time DESC
LIMIT 1;

-- name: newest_model
-- Age of the city's newest trained model (NULL: none yet).
SELECT extract(epoch FROM %(now)s::timestamptz - max(created_at))::float8 AS age_s
FROM forecast_models
WHERE city = %(city)s;

-- name: forecast_accuracy
-- The published forecast error of each of the city's lots and horizons.
SELECT a.lot_id, a.horizon_min, a.mae, a.mae_rate
FROM forecast_accuracy AS a
JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s
ORDER BY a.lot_id, a.horizon_min;

-- name: sign_acks
-- Seconds since each sign last confirmed content (NULL: never).
SELECT s.sign_id, extract(epoch FROM %(now)s::timestamptz - st.last_ack)::float8 AS ack_age_s
FROM signs AS s
LEFT JOIN sign_state AS st USING (sign_id)
WHERE s.city = %(city)s
ORDER BY s.sign_id;

-- name: open_alarms
-- The city's open alarms by kind and severity, and how many of them nobody acknowledged.
SELECT kind, severity, count(*) AS open,
       count(*) FILTER (WHERE acknowledged_at IS NULL) AS unacknowledged
FROM alarms
WHERE city = %(city)s AND cleared_at IS NULL
GROUP BY kind, severity
ORDER BY kind, severity;
