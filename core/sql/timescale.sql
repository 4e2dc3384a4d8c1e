-- TimescaleDB layer: applied after the schema on every migrate, so every statement is idempotent.

SELECT create_hypertable('bay_events', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE);
SELECT create_hypertable('lot_occupancy', by_range('time', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('sensor_health', by_range('time', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('forecasts', by_range('time', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('sign_log', by_range('time', INTERVAL '30 days'), if_not_exists => TRUE);

-- Compression: one segment per sensor or lot keeps per-lot reads fast on old chunks.
-- Guarded: changing compression settings again fails once chunks are compressed.
DO $$
DECLARE
    target record;
BEGIN
    FOR target IN
        SELECT h.hypertable_name AS name, s.segment_by
        FROM timescaledb_information.hypertables AS h
        JOIN (VALUES ('bay_events', 'bay_id'), ('lot_occupancy', 'lot_id'),
                     ('sensor_health', 'sensor_id')) AS s (name, segment_by)
          ON s.name = h.hypertable_name
        WHERE NOT h.compression_enabled
    LOOP
        EXECUTE format(
            'ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
            'timescaledb.compress_orderby = %L)', target.name, target.segment_by, 'time DESC');
    END LOOP;
END
$$;
SELECT add_compression_policy('bay_events', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_compression_policy('lot_occupancy', INTERVAL '30 days', if_not_exists => TRUE);
SELECT add_compression_policy('sensor_health', INTERVAL '7 days', if_not_exists => TRUE);

-- Retention: raw sensor readings and radio health are not kept forever; lot occupancy is.
SELECT add_retention_policy('bay_events', INTERVAL '400 days', if_not_exists => TRUE);
SELECT add_retention_policy('sensor_health', INTERVAL '90 days', if_not_exists => TRUE);
SELECT add_retention_policy('forecasts', INTERVAL '400 days', if_not_exists => TRUE);

-- The continuous aggregates of lot_occupancy, one a bucket width, each refreshed by a policy
-- every ``schedule`` over the last ``start_offset`` up to its newest bucket, which is still
-- filling (end_offset: one width). Real-time aggregation: buckets the policies have not
-- materialised yet (the newest 15 minutes or hour, and everything before a first refresh)
-- are computed from lot_occupancy on read, so the API's history reaches up to the newest
-- reading. (TimescaleDB >= 2.13 creates continuous aggregates materialised-only.)
DO $$
DECLARE
    rollup record;
BEGIN
    FOR rollup IN
        SELECT * FROM (VALUES
            ('lot_occupancy_15m', INTERVAL '15 minutes', INTERVAL '2 days', INTERVAL '5 minutes'),
            ('lot_occupancy_1h', INTERVAL '1 hour', INTERVAL '7 days', INTERVAL '30 minutes')
        ) AS r (name, width, start_offset, schedule)
    LOOP
        EXECUTE format(
            'CREATE MATERIALIZED VIEW IF NOT EXISTS %I WITH (timescaledb.continuous) AS '
            'SELECT time_bucket(%L::interval, time) AS bucket, lot_id, '
            'avg(occupied)::real AS occupied, avg(free)::real AS free, '
            'min(free) AS free_min, max(capacity) AS capacity, count(*) AS samples '
            'FROM lot_occupancy GROUP BY bucket, lot_id '
            'WITH NO DATA', rollup.name, rollup.width);
        PERFORM add_continuous_aggregate_policy(
            rollup.name, start_offset => rollup.start_offset, end_offset => rollup.width,
            schedule_interval => rollup.schedule, if_not_exists => TRUE);
        EXECUTE format('ALTER MATERIALIZED VIEW %I SET (timescaledb.materialized_only = false)',
                       rollup.name);
    END LOOP;
END
$$;

-- The chargers' status over time (migration 0015; a database migrated only up to an older
-- version, as in the tests, has none yet). Last: a hypertable made after the continuous
-- aggregates leaves their internal ids as they were before 0015, built either way.
DO $$
BEGIN
    IF to_regclass('evse_status') IS NOT NULL THEN
        PERFORM create_hypertable('evse_status', by_range('time', INTERVAL '30 days'),
                                  if_not_exists => TRUE);
    END IF;
END
$$;
