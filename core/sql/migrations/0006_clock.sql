-- Rules that depend on the time take the moment as a parameter (the services' clock,
-- core/clock.py), never the database's now(): a test or a replay runs at any instant, and the
-- database's clock deciding "stuck" or "silent" would disagree with the one the data was
-- stamped by. The stuck-bay rule is written here once and used by every query.

-- A bay whose sensor reported the same state for longer than the lot allows (max_dwell_s
-- occupied, max_idle_s free) is stuck: its bay counts neither free nor occupied.
CREATE FUNCTION bay_stuck(occupied boolean, since timestamptz, max_dwell_s integer,
                          max_idle_s integer, at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT coalesce(at - since > make_interval(
           secs => CASE WHEN occupied THEN max_dwell_s ELSE max_idle_s END), false)
$$;

DROP VIEW sensor_status;

-- Per sensor: its newest reading and health, with the lot's limits to judge them by.
CREATE VIEW sensor_state AS
SELECT b.bay_id AS sensor_id, b.lot_id, b.network, b.dev_eui,
       s.occupied, s.time AS last_reading, s.since AS state_since,
       h.time AS last_health, h.rssi, h.snr, h.gateway_id, p.battery_v, p.battery_pct,
       greatest(s.time, h.time) AS last_seen,
       l.max_dwell_s, l.max_idle_s, l.stale_after_s
FROM bays AS b
JOIN lots AS l USING (lot_id)
LEFT JOIN bay_state AS s USING (bay_id)
LEFT JOIN LATERAL (
    SELECT sh.time, sh.rssi, sh.snr, sh.gateway_id
    FROM sensor_health AS sh
    WHERE sh.sensor_id = b.bay_id
    ORDER BY sh.time DESC
    LIMIT 1
) AS h ON TRUE
LEFT JOIN LATERAL (
    SELECT sh.battery_v, sh.battery_pct
    FROM sensor_health AS sh
    WHERE sh.sensor_id = b.bay_id AND (sh.battery_v IS NOT NULL OR sh.battery_pct IS NOT NULL)
    ORDER BY sh.time DESC
    LIMIT 1
) AS p ON TRUE;

-- Per sensor at the moment ``at``: its state and what looks wrong with it (stuck, silent for
-- four staleness limits, battery low).
CREATE FUNCTION sensor_status(at timestamptz)
RETURNS TABLE (sensor_id text, lot_id text, network text, dev_eui text, occupied boolean,
               last_reading timestamptz, state_since timestamptz, last_health timestamptz,
               rssi real, snr real, gateway_id text, battery_v real, battery_pct real,
               last_seen timestamptz, stuck boolean, silent boolean, battery_low boolean)
LANGUAGE sql STABLE
AS $$
SELECT s.sensor_id, s.lot_id, s.network, s.dev_eui, s.occupied, s.last_reading, s.state_since,
       s.last_health, s.rssi, s.snr, s.gateway_id, s.battery_v, s.battery_pct, s.last_seen,
       bay_stuck(s.occupied, s.state_since, s.max_dwell_s, s.max_idle_s, at),
       coalesce(at - s.last_seen > make_interval(secs => 4 * s.stale_after_s), true),
       coalesce(s.battery_v < 2.8 OR s.battery_pct < 15, false)
FROM sensor_state AS s
$$;
