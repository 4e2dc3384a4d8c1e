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
-- evse_status came with migration 0015: a database migrated only up to an older version
-- (tests) has none yet.
DO $$
BEGIN
    IF to_regclass('evse_status') IS NOT NULL THEN
        CREATE INDEX IF NOT EXISTS evse_status_time_brin ON evse_status USING brin (time);
    END IF;
END
$$;

-- Stand-ins for the continuous aggregates (timescale.sql's, by the same names and widths):
-- ordinary views, always current. The means are float8 sums (exact for integers) over
-- counts: the same reals as avg(), without numeric arithmetic on every bucket.
DO $$
DECLARE
    rollup record;
BEGIN
    FOR rollup IN
        SELECT * FROM (VALUES ('lot_occupancy_15m', INTERVAL '15 minutes'),
                              ('lot_occupancy_1h', INTERVAL '1 hour')) AS r (name, width)
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE VIEW %I AS '
            'SELECT time_bucket(%L::interval, time) AS bucket, lot_id, '
            '(sum(occupied)::float8 / count(*))::real AS occupied, '
            '(sum(free)::float8 / count(*))::real AS free, '
            'min(free) AS free_min, max(capacity) AS capacity, count(*) AS samples '
            'FROM lot_occupancy GROUP BY lot_id, bucket', rollup.name, rollup.width);
    END LOOP;
END
$$;

-- What the views read, in the order they group it: a lot's 15-minute buckets over a range
-- are one index-only range scan, already sorted, so a year of a lot (105,000 readings) is
-- aggregated without a sort and without visiting the table (which interleaves every lot).
-- ``time`` is included because an index-only scan needs every column the view reads; the
-- hourly view can read the same index by lot (index-only too; it sorts by hour itself).
CREATE INDEX IF NOT EXISTS lot_occupancy_15m_read ON lot_occupancy
    (lot_id, time_bucket(INTERVAL '15 minutes', time)) INCLUDE (time, occupied, free, capacity);
