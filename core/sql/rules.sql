-- The rules written once: the functions and views that decide what the data means (a stuck
-- bay, a silent sensor), each the one place its rule is written.
--
-- Applied after schema.sql and the migrations on every migrate (core.db.migrate), like the
-- storage layer, so every statement is idempotent (CREATE OR REPLACE, which keeps grants). A
-- rule changes here alone, in place; only a change CREATE OR REPLACE cannot make (a view's or
-- a function's columns) also takes a migration that drops the old one first.
--
-- Rules that depend on the time take the moment as a parameter (the services' clock,
-- core/clock.py), never the database's now(): a test or a replay runs at any instant, and the
-- database's clock deciding "stuck" or "silent" would disagree with the one the data was
-- stamped by.

-- A bay whose sensor reported the same state for longer than the lot allows (max_dwell_s
-- occupied, max_idle_s free) is stuck: its bay counts neither free nor occupied.
CREATE OR REPLACE FUNCTION bay_stuck(occupied boolean, since timestamptz,
                                     max_dwell_s integer, max_idle_s integer, at timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT coalesce(at - since > make_interval(
           secs => CASE WHEN occupied THEN max_dwell_s ELSE max_idle_s END), false)
$$;

-- Per bay at the moment ``at``: whether it counts as occupied (its sensor says so and is not
-- stuck: a stuck sensor's bay counts neither free nor occupied, a bay not heard from yet
-- counts as free), whether its sensor is stuck, its newest reading, and whether that came
-- within four staleness limits. ingest counts a lot's free bays with it, the API the bays of
-- each kind.
CREATE OR REPLACE FUNCTION bay_status(at timestamptz)
RETURNS TABLE (bay_id text, lot_id text, kind text, occupied boolean, stuck boolean,
               heard timestamptz, fresh boolean)
LANGUAGE sql STABLE
AS $$
SELECT b.bay_id, b.lot_id, b.kind, coalesce(s.occupied AND NOT k.stuck, false), k.stuck, s.time,
       coalesce(at - s.time <= make_interval(secs => 4 * l.stale_after_s), false)
FROM bays AS b
JOIN lots AS l ON l.lot_id = b.lot_id
LEFT JOIN bay_state AS s ON s.bay_id = b.bay_id
CROSS JOIN LATERAL (
    SELECT bay_stuck(s.occupied, s.since, l.max_dwell_s, l.max_idle_s, at) AS stuck
) AS k
$$;

-- Parking and charging read together: per charging point of ``evse_ids`` that has reported a
-- status, its effective status at the moment ``at``. A point whose bays' sensors (fresh and
-- not stuck, bay_status's rule) say a bay is occupied while the point reports AVAILABLE is
-- not free (``free`` false); once that has lasted ``blocked_after_s`` (the car parked and the
-- point has not been charging since: the later of the bay's occupied ``since`` and the
-- point's status ``since``) the point is BLOCKED, since that moment. A point with no bay, or
-- whose bays' sensors are all stale or stuck, reads its own status only (``occupied`` NULL).
-- Every output (the charging locations, the AFIR status, the retained MQTT state, a lot's
-- ``ev.free``, signs) reads a point's status through here; ``reported`` is what it said.
CREATE OR REPLACE FUNCTION evse_effective(at timestamptz, blocked_after_s integer,
                                          evse_ids text[])
RETURNS TABLE (evse_id text, lot_id text, status text, reported text, since timestamptz,
               updated timestamptz, source text, occupied boolean, free boolean)
LANGUAGE sql STABLE
AS $$
WITH bay AS (
    SELECT p.evse_id,
           bool_or(b.occupied) FILTER (WHERE b.fresh AND NOT b.stuck) AS occupied,
           min(s.since) FILTER (WHERE b.occupied AND b.fresh) AS occupied_since
    FROM charging_points AS p
    CROSS JOIN LATERAL unnest(p.bays) AS pb(bay_id)
    JOIN bay_status(at) AS b ON b.bay_id = pb.bay_id
    LEFT JOIN bay_state AS s ON s.bay_id = pb.bay_id
    WHERE p.evse_id = ANY(evse_ids)
    GROUP BY p.evse_id
)
SELECT e.evse_id, st.lot_id,
       CASE WHEN k.blocked_at <= at THEN 'BLOCKED' ELSE e.status END,
       e.status,
       CASE WHEN k.blocked_at <= at THEN k.blocked_at ELSE e.since END,
       e.updated, e.source, bay.occupied,
       e.status = 'AVAILABLE' AND NOT coalesce(bay.occupied, false)
FROM evse_state AS e
JOIN charging_points AS p ON p.evse_id = e.evse_id
JOIN charging_stations AS st ON st.charge_point_id = p.charge_point_id
LEFT JOIN bay ON bay.evse_id = e.evse_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN e.status = 'AVAILABLE' AND bay.occupied
                THEN greatest(e.since, bay.occupied_since)
                     + make_interval(secs => blocked_after_s) END AS blocked_at
) AS k
WHERE e.evse_id = ANY(evse_ids)
$$;

-- What the charging points reported (evse_status) and what the bays' sensors said
-- (bay_events), as one history to read runs of a state from (state_runs): ``kind`` 'evse', a
-- point's ``status``, or 'bay', a bay's ``occupied``; ``id`` the point or bay.
CREATE OR REPLACE VIEW state_history AS
SELECT 'evse' AS kind, evse_id AS id, time, status, NULL::boolean AS occupied FROM evse_status
UNION ALL
SELECT 'bay', bay_id, time, NULL, occupied FROM bay_events;

-- The point or bay ``id`` of ``kind`` over [period_start, period_end): the runs of its state
-- in state_history, the history as stored: each state held from the reading that changed it
-- to the next change (or period_end), a state held since before the period from its last
-- reading before it. evse_blocked_hours and bay_faults read the histories so.
CREATE OR REPLACE FUNCTION state_runs(kind text, id text, period_start timestamptz,
                                      period_end timestamptz)
RETURNS TABLE (status text, occupied boolean, since timestamptz, until timestamptz)
LANGUAGE sql STABLE
AS $$
WITH readings AS (
    SELECT h.time, h.status, h.occupied FROM state_history AS h
    WHERE h.kind = state_runs.kind AND h.id = state_runs.id
      AND h.time >= period_start AND h.time < period_end
    UNION ALL
    (SELECT h.time, h.status, h.occupied FROM state_history AS h
     WHERE h.kind = state_runs.kind AND h.id = state_runs.id AND h.time < period_start
     ORDER BY h.time DESC LIMIT 1)
), changes AS (
    SELECT r.*, r.status IS DISTINCT FROM lag(r.status) OVER w
                OR r.occupied IS DISTINCT FROM lag(r.occupied) OVER w AS changed
    FROM readings AS r
    WINDOW w AS (ORDER BY r.time)
)
SELECT c.status, c.occupied, c.time, lead(c.time, 1, period_end) OVER (ORDER BY c.time)
FROM changes AS c WHERE c.changed
$$;

-- Per charging point of ``evse_ids`` over [period_start, period_end): the hours it was
-- blocked by evse_effective's rule (a bay it serves occupied while it reported AVAILABLE, from
-- ``blocked_after_s`` after the later of the two began) or by its own report (BLOCKED), the
-- spans of all its bays joined (a multirange: two bays never count an hour twice). The
-- histories' runs as stored (state_runs): the sensors' health at the time is not judged
-- again. The dashboard's blocked hours (planners justify enforcement with them). SECURITY
-- DEFINER: the API's role gets hours per point, not the bays' raw readings (bay_events),
-- which it may not read.
CREATE OR REPLACE FUNCTION evse_blocked_hours(evse_ids text[], blocked_after_s integer,
                                              period_start timestamptz, period_end timestamptz)
RETURNS TABLE (evse_id text, blocked_hours double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
WITH point AS (
    SELECT p.evse_id, p.bays FROM charging_points AS p WHERE p.evse_id = ANY(evse_ids)
), status_runs AS (
    SELECT point.evse_id, r.status, r.since, r.until
    FROM point
    CROSS JOIN LATERAL state_runs('evse', point.evse_id, period_start, period_end) AS r
), occupied_runs AS (
    SELECT point.evse_id, r.since, r.until
    FROM point
    CROSS JOIN LATERAL unnest(point.bays) AS b (bay_id)
    CROSS JOIN LATERAL state_runs('bay', b.bay_id, period_start, period_end) AS r
    WHERE r.occupied
), spans AS (
    SELECT s.evse_id, tstzrange(greatest(s.since, o.since)
                                + make_interval(secs => blocked_after_s),
                                least(s.until, o.until)) AS span
    FROM status_runs AS s
    JOIN occupied_runs AS o ON o.evse_id = s.evse_id
    WHERE s.status = 'AVAILABLE'
      AND greatest(s.since, o.since) + make_interval(secs => blocked_after_s)
          < least(s.until, o.until)
    UNION ALL
    SELECT s.evse_id, tstzrange(s.since, s.until) FROM status_runs AS s
    WHERE s.status = 'BLOCKED' AND s.since < s.until
), joined AS (
    SELECT spans.evse_id,
           range_agg(spans.span * tstzrange(period_start, period_end)) AS blocked
    FROM spans GROUP BY spans.evse_id
)
SELECT point.evse_id, coalesce((
    SELECT sum(extract(epoch FROM upper(r) - lower(r))) / 3600
    FROM unnest(joined.blocked) AS r), 0)::double precision
FROM point LEFT JOIN joined USING (evse_id)
$$;

-- Per sensor: its newest reading and health, with the lot's limits to judge them by. Bay
-- sensors; and each counter-counted lot's counter as ``{lot_id}/counter`` (network
-- ``counter``), with when it last jumped (a change no lot could have seen: ingest
-- re-baselined the counter and kept the count; the rule is in ingest/_state.py).
CREATE OR REPLACE VIEW sensor_state AS
SELECT b.bay_id AS sensor_id, b.lot_id, b.network, b.dev_eui,
       s.occupied, s.time AS last_reading, s.since AS state_since,
       h.time AS last_health, h.rssi, h.snr, h.gateway_id, p.battery_v, p.battery_pct,
       greatest(s.time, h.time) AS last_seen,
       l.max_dwell_s, l.max_idle_s, l.stale_after_s, NULL::timestamptz AS counter_jump_at
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
       l.max_dwell_s, l.max_idle_s, l.stale_after_s, st.counter_jump_at
FROM lots AS l
LEFT JOIN lot_state AS st USING (lot_id)
WHERE l.counting = 'counter';

-- Per sensor at the moment ``at``: its state and what looks wrong with it (stuck, silent for
-- four staleness limits, battery low, and for a counter: a jump within the last 24 hours,
-- ingest's COUNTER_JUMP_HOLD, not undone by a re-zeroing, which clears counter_jump_at).
CREATE OR REPLACE FUNCTION sensor_status(at timestamptz)
RETURNS TABLE (sensor_id text, lot_id text, network text, dev_eui text, occupied boolean,
               last_reading timestamptz, state_since timestamptz, last_health timestamptz,
               rssi real, snr real, gateway_id text, battery_v real, battery_pct real,
               last_seen timestamptz, stuck boolean, silent boolean, battery_low boolean,
               counter_jump boolean)
LANGUAGE sql STABLE
AS $$
SELECT s.sensor_id, s.lot_id, s.network, s.dev_eui, s.occupied, s.last_reading, s.state_since,
       s.last_health, s.rssi, s.snr, s.gateway_id, s.battery_v, s.battery_pct, s.last_seen,
       bay_stuck(s.occupied, s.state_since, s.max_dwell_s, s.max_idle_s, at),
       coalesce(at - s.last_seen > make_interval(secs => 4 * s.stale_after_s), true),
       coalesce(s.battery_v < 2.8 OR s.battery_pct < 15, false),
       coalesce(s.counter_jump_at > at - interval '24 hours', false)
FROM sensor_state AS s
$$;

-- Per bay of the lots ``lot_ids`` over [period_start, period_end): whether it was silent at
-- some time in it (nothing heard, neither a reading nor radio health, for four staleness
-- limits: sensor_status's rule) and whether it was stuck at some time in it (one state held
-- longer than the lot allows: bay_stuck). A bay's span before its first message of the period
-- starts at its last message before it, or at period_start if it had none (so a bay never
-- heard is silent); its states run as state_runs reads them. The console's monthly report
-- counts them. SECURITY DEFINER: the API's role gets these two answers per bay, not the raw
-- readings (bay_events), which it may not read.
CREATE OR REPLACE FUNCTION bay_faults(lot_ids text[], period_start timestamptz,
                                      period_end timestamptz)
RETURNS TABLE (bay_id text, lot_id text, silent boolean, stuck boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
WITH bay AS (
    SELECT b.bay_id, b.lot_id, l.stale_after_s, l.max_dwell_s, l.max_idle_s
    FROM bays AS b
    JOIN lots AS l ON l.lot_id = b.lot_id
    WHERE b.lot_id = ANY(lot_ids)
), heard AS (
    SELECT e.bay_id, e.time
    FROM bay_events AS e JOIN bay ON bay.bay_id = e.bay_id
    WHERE e.time >= period_start AND e.time < period_end
    UNION ALL
    SELECT h.sensor_id, h.time
    FROM sensor_health AS h JOIN bay ON bay.bay_id = h.sensor_id
    WHERE h.time >= period_start AND h.time < period_end
    UNION ALL
    SELECT bay.bay_id, coalesce(greatest(
        (SELECT max(e.time) FROM bay_events AS e
         WHERE e.bay_id = bay.bay_id AND e.time < period_start),
        (SELECT max(h.time) FROM sensor_health AS h
         WHERE h.sensor_id = bay.bay_id AND h.time < period_start)), period_start)
    FROM bay
), gaps AS (
    SELECT heard.bay_id, heard.time,
           lead(heard.time, 1, period_end) OVER (PARTITION BY heard.bay_id ORDER BY heard.time)
               AS next
    FROM heard
)
SELECT bay.bay_id, bay.lot_id,
       EXISTS (
           SELECT 1 FROM gaps AS g
           WHERE g.bay_id = bay.bay_id
             AND greatest(period_start, g.time + make_interval(secs => 4 * bay.stale_after_s))
                 < least(g.next, period_end)),
       EXISTS (
           SELECT 1 FROM state_runs('bay', bay.bay_id, period_start, period_end) AS r
           WHERE r.until > period_start
             AND bay_stuck(r.occupied, r.since, bay.max_dwell_s, bay.max_idle_s, r.until))
FROM bay
$$;

-- Each forecast with its error: against the latest reading at or before its target time, at
-- most 15 minutes earlier (a forecast without one has no row: it is not scored). ``error`` is
-- in spaces, ``error_rate`` a share of the capacity then (NULL at capacity 0). The published
-- error (forecasting's refresh_accuracy) and the console's monthly report average it, each
-- over its own window (bound ``time`` too: it lets TimescaleDB skip old chunks).
CREATE OR REPLACE VIEW forecast_scores AS
SELECT f.lot_id, f.horizon_min, f.kind, f.time, f.target_time,
       abs(f.free - o.free) AS error, abs(f.free - o.free) / nullif(o.capacity, 0) AS error_rate
FROM forecasts AS f
CROSS JOIN LATERAL (
    SELECT r.free, r.capacity FROM lot_occupancy AS r
    WHERE r.lot_id = f.lot_id AND r.time <= f.target_time
      AND r.time >= f.target_time - INTERVAL '15 minutes'
    ORDER BY r.time DESC
    LIMIT 1
) AS o;
