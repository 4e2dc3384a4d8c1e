-- Data quality: when each bay's state last changed (to spot stuck sensors), a per-lot
-- quality score with the reasons behind it, and when counters may be re-zeroed.

ALTER TABLE lots
    ADD COLUMN max_dwell_s integer NOT NULL DEFAULT 172800 CHECK (max_dwell_s > 0),
    ADD COLUMN max_idle_s integer NOT NULL DEFAULT 604800 CHECK (max_idle_s > 0),
    ADD COLUMN empty_at time;

ALTER TABLE bay_state ADD COLUMN since timestamptz;
UPDATE bay_state SET since = time;
ALTER TABLE bay_state ALTER COLUMN since SET NOT NULL;

ALTER TABLE lot_state
    ADD COLUMN quality real CHECK (quality BETWEEN 0 AND 1),
    ADD COLUMN flags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rezeroed_on date,
    ADD COLUMN drift integer;

-- Per sensor: its newest reading and health, and what looks wrong with it.
CREATE VIEW sensor_status AS
SELECT b.bay_id AS sensor_id, b.lot_id, b.network, b.dev_eui,
       s.occupied, s.time AS last_reading, s.since AS state_since,
       h.time AS last_health, h.rssi, h.snr, h.gateway_id, p.battery_v, p.battery_pct,
       greatest(s.time, h.time) AS last_seen,
       coalesce(now() - s.since > make_interval(secs => CASE WHEN s.occupied THEN l.max_dwell_s
                                                            ELSE l.max_idle_s END), false)
           AS stuck,
       coalesce(now() - greatest(s.time, h.time) > make_interval(secs => 4 * l.stale_after_s),
                true) AS silent,
       coalesce(p.battery_v < 2.8 OR p.battery_pct < 15, false) AS battery_low
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
