-- Counter plausibility: when a garage counter last jumped (a change no lot could have seen:
-- ingest re-baselined the counter and kept the count; the rule is in ingest/_state.py), and
-- garage counters as sensors of their own in sensor_status.

ALTER TABLE lot_state ADD COLUMN counter_jump_at timestamptz;

-- Per sensor: its newest reading and health, and what looks wrong with it. Bay sensors as
-- before; each counter-counted lot's counter as ``{lot_id}/counter`` (network ``counter``),
-- silent by the bay sensors' rule, never stuck or low on battery. ``counter_jump``: the
-- counter jumped within the last 24 hours (ingest's COUNTER_JUMP_HOLD) and the lot has not
-- been re-zeroed since (a re-zeroing clears counter_jump_at).
CREATE OR REPLACE VIEW sensor_status AS
SELECT b.bay_id AS sensor_id, b.lot_id, b.network, b.dev_eui,
       s.occupied, s.time AS last_reading, s.since AS state_since,
       h.time AS last_health, h.rssi, h.snr, h.gateway_id, p.battery_v, p.battery_pct,
       greatest(s.time, h.time) AS last_seen,
       coalesce(now() - s.since > make_interval(secs => CASE WHEN s.occupied THEN l.max_dwell_s
                                                            ELSE l.max_idle_s END), false)
           AS stuck,
       coalesce(now() - greatest(s.time, h.time) > make_interval(secs => 4 * l.stale_after_s),
                true) AS silent,
       coalesce(p.battery_v < 2.8 OR p.battery_pct < 15, false) AS battery_low,
       false AS counter_jump
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
) AS p ON TRUE
UNION ALL
SELECT l.lot_id || '/counter', l.lot_id, 'counter', NULL,
       NULL, st.counter_time, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL,
       st.counter_time,
       false,
       coalesce(now() - st.counter_time > make_interval(secs => 4 * l.stale_after_s), true),
       false,
       coalesce(st.counter_jump_at > now() - interval '24 hours', false)
FROM lots AS l
LEFT JOIN lot_state AS st USING (lot_id)
WHERE l.counting = 'counter';
