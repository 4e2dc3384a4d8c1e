-- Plain-PostgreSQL layer (no TimescaleDB): the same names, so every query works unchanged.
-- Applied after the schema on every migrate, so every statement is idempotent.

-- time_bucket as TimescaleDB defines it for fixed intervals (origin Monday 2000-01-03).
CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$;

CREATE INDEX IF NOT EXISTS bay_events_time_brin ON bay_events USING brin (time);
CREATE INDEX IF NOT EXISTS lot_occupancy_time_brin ON lot_occupancy USING brin (time);
CREATE INDEX IF NOT EXISTS sensor_health_time_brin ON sensor_health USING brin (time);
CREATE INDEX IF NOT EXISTS forecasts_time_brin ON forecasts USING brin (time);
CREATE INDEX IF NOT EXISTS sign_log_time_brin ON sign_log USING brin (time);

-- Stand-ins for the continuous aggregates: ordinary views, always current.
CREATE OR REPLACE VIEW lot_occupancy_15m AS
SELECT time_bucket(INTERVAL '15 minutes', time) AS bucket, lot_id,
       avg(occupied)::real AS occupied, avg(free)::real AS free,
       min(free) AS free_min, max(capacity) AS capacity, count(*) AS samples
FROM lot_occupancy GROUP BY bucket, lot_id;

CREATE OR REPLACE VIEW lot_occupancy_1h AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket, lot_id,
       avg(occupied)::real AS occupied, avg(free)::real AS free,
       min(free) AS free_min, max(capacity) AS capacity, count(*) AS samples
FROM lot_occupancy GROUP BY bucket, lot_id;
