-- Named queries of the alarms' evaluator (ingest/_alarms.py): one query finds every cause of
-- an alarm from what the parts record; the others raise the new ones and clear the gone ones.
-- Times are the service's clock (%(now)s), never the database's.

-- name: lock_city_alarms
-- One evaluation of a city's alarms at a time, until commit (the leader's and another's
-- during a handover, or a manual run).
SELECT pg_advisory_xact_lock(hashtext('parkleit_alarms'), hashtext(%(city)s));

-- name: alarm_conditions
-- Every cause of an alarm in the city at %(now)s: kind, severity, target (a bay sensor, a
-- gateway, a lot, a garage counter or a sign), since when (when the cause began, if known and
-- past, else now) and what the operator needs to see of it. Sensors and gateways only once
-- heard from (a never-heard lot is lot_no_data); signs only once served by signage; services
-- whose retained status topic says offline (%(offline_services)s, what ingest heard).
WITH sensors AS (
    SELECT s.*, l.stale_after_s, l.max_dwell_s, l.max_idle_s
    FROM sensor_status(%(now)s) AS s
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s
), gateways AS (
    -- Each gateway through which some sensor's newest radio reading came (no scan of the
    -- history at every evaluation): when it was last heard, by how many sensors.
    SELECT gateway_id, max(last_health) AS last_seen, count(*) AS sensors
    FROM sensors
    WHERE gateway_id IS NOT NULL
    GROUP BY gateway_id
), causes (kind, severity, target, began, detail) AS (
    SELECT 'sensor_silent', 'warning', sensor_id,
           last_seen + make_interval(secs => 4 * stale_after_s),
           jsonb_build_object('lot_id', lot_id, 'last_seen', last_seen, 'gateway_id', gateway_id)
    FROM sensors
    WHERE network <> 'counter' AND silent AND last_seen IS NOT NULL
    UNION ALL
    SELECT 'bay_stuck', 'warning', sensor_id,
           state_since + make_interval(
               secs => CASE WHEN occupied THEN max_dwell_s ELSE max_idle_s END),
           jsonb_build_object('lot_id', lot_id, 'occupied', occupied, 'state_since', state_since)
    FROM sensors
    WHERE network <> 'counter' AND stuck
    UNION ALL
    SELECT 'battery_low', 'warning', sensor_id, NULL::timestamptz,
           jsonb_build_object('lot_id', lot_id, 'battery_v', battery_v,
                              'battery_pct', battery_pct)
    FROM sensors
    WHERE battery_low
    UNION ALL
    SELECT 'counter_jump', 'warning', s.sensor_id, st.counter_jump_at,
           jsonb_build_object('lot_id', s.lot_id, 'jumped_at', st.counter_jump_at)
    FROM sensors AS s
    JOIN lot_state AS st USING (lot_id)
    WHERE s.network = 'counter' AND s.counter_jump
    UNION ALL
    SELECT 'gateway_silent', 'critical', gateway_id,
           last_seen + make_interval(secs => %(gateway_silent_s)s),
           jsonb_build_object('last_seen', last_seen, 'sensors', sensors)
    FROM gateways
    WHERE last_seen < %(now)s::timestamptz - make_interval(secs => %(gateway_silent_s)s)
    UNION ALL
    SELECT 'lot_no_data', 'critical', l.lot_id,
           st.updated + make_interval(secs => l.stale_after_s),
           jsonb_build_object('updated', st.updated, 'stale_after_s', l.stale_after_s)
    FROM lots AS l
    LEFT JOIN lot_state AS st USING (lot_id)
    WHERE l.city = %(city)s AND coalesce(st.status, 'unknown') <> 'closed'
      AND (st.updated IS NULL OR %(now)s::timestamptz - st.updated
                                 > make_interval(secs => l.stale_after_s))
    UNION ALL
    SELECT 'sign_no_ack', 'critical', g.sign_id,
           s.last_ack + make_interval(secs => %(sign_ack_s)s),
           jsonb_build_object('last_ack', s.last_ack, 'last_error', s.last_error,
                              'consecutive_failures', s.consecutive_failures)
    FROM signs AS g
    JOIN sign_state AS s USING (sign_id)
    WHERE g.city = %(city)s
      AND (%(now)s::timestamptz - s.last_ack > make_interval(secs => %(sign_ack_s)s)
           OR (s.last_ack IS NULL AND s.consecutive_failures >= %(sign_failures)s))
    UNION ALL
    SELECT 'sign_local_mode', 'warning', g.sign_id, s.last_error_at,
           jsonb_build_object('last_error', s.last_error)
    FROM signs AS g
    JOIN sign_state AS s USING (sign_id)
    WHERE g.city = %(city)s AND s.consecutive_failures > 0
      AND s.last_error ~* 'local ?(mode|control)'
    UNION ALL
    SELECT 'forecast_error', 'warning', a.lot_id, NULL::timestamptz,
           jsonb_build_object('horizon_min', a.horizon_min, 'mae', a.mae,
                              'mae_rate', a.mae_rate, 'computed_at', a.computed_at)
    FROM forecast_accuracy AS a
    JOIN lots AS l USING (lot_id)
    WHERE l.city = %(city)s AND a.horizon_min = %(forecast_horizon_min)s
      AND a.mae_rate > %(forecast_error_rate)s
    UNION ALL
    SELECT 'service_offline', 'critical', service, NULL::timestamptz,
           jsonb_build_object('status', 'offline')
    FROM unnest(%(offline_services)s::text[]) AS service
    UNION ALL
    -- A charging point the OCPI pull stored as UNKNOWN: its peer's endpoint fell silent (down
    -- or garbage) past the peer's staleness limit (ocpi/_service.py); a peer that reports a
    -- point UNKNOWN itself raises it too.
    SELECT 'charger_source_silent', 'warning', e.evse_id, e.since,
           jsonb_build_object('station_id', p.charge_point_id, 'since', e.since,
                              'source', e.source)
    FROM evse_state AS e
    JOIN charging_points AS p USING (evse_id)
    JOIN charging_stations AS s USING (charge_point_id)
    WHERE s.city = %(city)s AND e.status = 'UNKNOWN' AND e.source = 'ocpi'
)
SELECT kind, severity, target, least(coalesce(began, %(now)s), %(now)s) AS since, detail
FROM causes
ORDER BY kind, target;

-- name: raise_alarms
-- The causes found (arrays of equal length, one element per cause) that have no open alarm
-- yet, raised; a cause whose alarm is open keeps it as it is, acknowledgement and all.
INSERT INTO alarms (city, kind, severity, target, since, detail)
SELECT %(city)s, c.kind, c.severity, c.target, c.since, c.detail
FROM unnest(%(kind)s::text[], %(severity)s::text[], %(target)s::text[],
            %(since)s::timestamptz[], %(detail)s::jsonb[])
     AS c (kind, severity, target, since, detail)
ON CONFLICT (city, kind, target) WHERE cleared_at IS NULL DO NOTHING
RETURNING id, city, kind, severity, target, since, cleared_at, detail;

-- name: clear_alarms
-- The city's open alarms whose cause is gone (not among the causes found), cleared at now.
UPDATE alarms AS a
SET cleared_at = greatest(%(now)s::timestamptz, a.since)
WHERE a.city = %(city)s AND a.cleared_at IS NULL
  AND NOT EXISTS (SELECT 1
                  FROM unnest(%(kind)s::text[], %(target)s::text[]) AS c (kind, target)
                  WHERE c.kind = a.kind AND c.target = a.target)
RETURNING a.id, a.city, a.kind, a.severity, a.target, a.since, a.cleared_at, a.detail;
