-- Named queries of the core package; values are always parameters.

-- name: upsert_lot
-- A lot of the city config, inserted or brought up to date by its id.
INSERT INTO lots (lot_id, city, name, kind, counting, capacity, disabled_spaces, ev_spaces,
                  latitude, longitude, opening_hours, almost_full, full_at, stale_after_s,
                  counter_modulus, max_dwell_s, max_idle_s, empty_at, attributes)
VALUES (%(lot_id)s, %(city)s, %(name)s, %(kind)s, %(counting)s, %(capacity)s,
        %(disabled_spaces)s, %(ev_spaces)s, %(latitude)s, %(longitude)s, %(opening_hours)s,
        %(almost_full)s, %(full_at)s, %(stale_after_s)s, %(counter_modulus)s,
        %(max_dwell_s)s, %(max_idle_s)s, %(empty_at)s, %(attributes)s)
ON CONFLICT (lot_id) DO UPDATE SET
    city = excluded.city, name = excluded.name, kind = excluded.kind,
    counting = excluded.counting, capacity = excluded.capacity,
    disabled_spaces = excluded.disabled_spaces, ev_spaces = excluded.ev_spaces,
    latitude = excluded.latitude, longitude = excluded.longitude,
    opening_hours = excluded.opening_hours, almost_full = excluded.almost_full,
    full_at = excluded.full_at, stale_after_s = excluded.stale_after_s,
    counter_modulus = excluded.counter_modulus, max_dwell_s = excluded.max_dwell_s,
    max_idle_s = excluded.max_idle_s, empty_at = excluded.empty_at,
    attributes = excluded.attributes;

-- name: upsert_bay
-- A bay of the city config, inserted or brought up to date by its id.
INSERT INTO bays (bay_id, lot_id, kind, network, dev_eui)
VALUES (%(bay_id)s, %(lot_id)s, %(kind)s, %(network)s, %(dev_eui)s)
ON CONFLICT (bay_id) DO UPDATE SET
    lot_id = excluded.lot_id, kind = excluded.kind, network = excluded.network,
    dev_eui = excluded.dev_eui;

-- name: upsert_sign
-- A sign of the city config, inserted or brought up to date by its id.
INSERT INTO signs (sign_id, city, name, driver, address, latitude, longitude, lines)
VALUES (%(sign_id)s, %(city)s, %(name)s, %(driver)s, %(address)s, %(latitude)s,
        %(longitude)s, %(lines)s)
ON CONFLICT (sign_id) DO UPDATE SET
    city = excluded.city, name = excluded.name, driver = excluded.driver,
    address = excluded.address, latitude = excluded.latitude, longitude = excluded.longitude,
    lines = excluded.lines;

-- name: upsert_station
-- A charging station of the city config, inserted or brought up to date by its id.
INSERT INTO charging_stations (charge_point_id, city, lot_id, name, operator, protocol,
                               bnetza_id, latitude, longitude)
VALUES (%(charge_point_id)s, %(city)s, %(lot_id)s, %(name)s, %(operator)s, %(protocol)s,
        %(bnetza_id)s, %(latitude)s, %(longitude)s)
ON CONFLICT (charge_point_id) DO UPDATE SET
    city = excluded.city, lot_id = excluded.lot_id, name = excluded.name,
    operator = excluded.operator, protocol = excluded.protocol, bnetza_id = excluded.bnetza_id,
    latitude = excluded.latitude, longitude = excluded.longitude;

-- name: upsert_point
-- A charging point (EVSE) of the city config, inserted or brought up to date by its id.
INSERT INTO charging_points (evse_id, charge_point_id, number, bays, connectors, tariff)
VALUES (%(evse_id)s, %(charge_point_id)s, %(number)s, %(bays)s, %(connectors)s, %(tariff)s)
ON CONFLICT (evse_id) DO UPDATE SET
    charge_point_id = excluded.charge_point_id, number = excluded.number, bays = excluded.bays,
    connectors = excluded.connectors, tariff = excluded.tariff;

-- name: ensure_lot_state
-- A lot's current-state row, created empty if missing; its capacity as configured.
INSERT INTO lot_state (lot_id, capacity) VALUES (%(lot_id)s, %(capacity)s)
ON CONFLICT (lot_id) DO UPDATE SET capacity = excluded.capacity;

-- name: delete_gone_lots
-- The city's lots the config no longer has (their bays and state go with them).
DELETE FROM lots WHERE city = %(city)s AND NOT (lot_id = ANY(%(lot_ids)s));

-- name: delete_gone_bays
-- The city's bays the config no longer has.
DELETE FROM bays USING lots
WHERE bays.lot_id = lots.lot_id AND lots.city = %(city)s AND NOT (bay_id = ANY(%(bay_ids)s));

-- name: delete_gone_points
-- The city's charging points the config no longer has (their state goes with them).
DELETE FROM charging_points USING charging_stations AS s
WHERE charging_points.charge_point_id = s.charge_point_id AND s.city = %(city)s
  AND NOT (evse_id = ANY(%(evse_ids)s));

-- name: delete_gone_stations
-- The city's charging stations the config no longer has (their points go with them).
DELETE FROM charging_stations
WHERE city = %(city)s AND NOT (charge_point_id = ANY(%(charge_point_ids)s));

-- name: delete_gone_signs
-- The city's signs the config no longer has.
DELETE FROM signs WHERE city = %(city)s AND NOT (sign_id = ANY(%(sign_ids)s));

-- name: taken_ids
-- Ids of a city's config that another city of the installation already has (at most one).
SELECT 'lot' AS kind, lot_id AS id, city FROM lots
WHERE city <> %(city)s AND lot_id = ANY(%(lot_ids)s)
UNION ALL
SELECT 'bay', b.bay_id, l.city FROM bays AS b JOIN lots AS l USING (lot_id)
WHERE l.city <> %(city)s AND b.bay_id = ANY(%(bay_ids)s)
UNION ALL
SELECT 'device', b.dev_eui, l.city FROM bays AS b JOIN lots AS l USING (lot_id)
WHERE l.city <> %(city)s AND b.dev_eui = ANY(%(dev_euis)s)
UNION ALL
SELECT 'sign', sign_id, city FROM signs
WHERE city <> %(city)s AND sign_id = ANY(%(sign_ids)s)
UNION ALL
SELECT 'charging station', charge_point_id, city FROM charging_stations
WHERE city <> %(city)s AND charge_point_id = ANY(%(charge_point_ids)s)
UNION ALL
SELECT 'EVSE', p.evse_id, s.city FROM charging_points AS p JOIN charging_stations AS s
    USING (charge_point_id)
WHERE s.city <> %(city)s AND p.evse_id = ANY(%(evse_ids)s)
LIMIT 1;

-- name: may_write_registry
-- Whether this session's role may write the registry: db migrate's may, a service's own role
-- (core/sql/roles.sql) may only read it.
SELECT has_table_privilege('lots', 'INSERT') AND has_table_privilege('bays', 'INSERT')
       AND has_table_privilege('signs', 'INSERT')
       AND has_table_privilege('charging_stations', 'INSERT')
       AND has_table_privilege('charging_points', 'INSERT') AS may_write;

-- name: registry_differences
-- What keeps the registry from matching a city's config, for a role that may only read it:
-- the config's lots, bays and signs (JSON arrays of rows as upsert_* takes them) that are
-- missing or differ in a column the config sets (compared after PostgreSQL read the config's
-- values into the columns' types, as an upsert would have), and the city's rows the config
-- does not have. No rows: the registry matches.
WITH lot_rows AS (SELECT r FROM jsonb_array_elements(%(lots)s::jsonb) AS r),
     bay_rows AS (SELECT r FROM jsonb_array_elements(%(bays)s::jsonb) AS r),
     sign_rows AS (SELECT r FROM jsonb_array_elements(%(signs)s::jsonb) AS r),
     station_rows AS (SELECT r FROM jsonb_array_elements(%(stations)s::jsonb) AS r),
     point_rows AS (SELECT r FROM jsonb_array_elements(%(points)s::jsonb) AS r)
SELECT 'lot' AS kind, c.r ->> 'lot_id' AS id
FROM lot_rows AS c
LEFT JOIN lots AS t ON t.lot_id = c.r ->> 'lot_id'
WHERE t.lot_id IS NULL OR jsonb_populate_record(t, c.r) IS DISTINCT FROM t
UNION ALL
SELECT 'lot', lot_id FROM lots
WHERE city = %(city)s AND lot_id NOT IN (SELECT r ->> 'lot_id' FROM lot_rows)
UNION ALL
SELECT 'bay', c.r ->> 'bay_id'
FROM bay_rows AS c
LEFT JOIN bays AS t ON t.bay_id = c.r ->> 'bay_id'
WHERE t.bay_id IS NULL OR jsonb_populate_record(t, c.r) IS DISTINCT FROM t
UNION ALL
SELECT 'bay', b.bay_id FROM bays AS b JOIN lots AS l USING (lot_id)
WHERE l.city = %(city)s AND b.bay_id NOT IN (SELECT r ->> 'bay_id' FROM bay_rows)
UNION ALL
SELECT 'sign', c.r ->> 'sign_id'
FROM sign_rows AS c
LEFT JOIN signs AS t ON t.sign_id = c.r ->> 'sign_id'
WHERE t.sign_id IS NULL OR jsonb_populate_record(t, c.r) IS DISTINCT FROM t
UNION ALL
SELECT 'sign', sign_id FROM signs
WHERE city = %(city)s AND sign_id NOT IN (SELECT r ->> 'sign_id' FROM sign_rows)
UNION ALL
SELECT 'charging station', c.r ->> 'charge_point_id'
FROM station_rows AS c
LEFT JOIN charging_stations AS t ON t.charge_point_id = c.r ->> 'charge_point_id'
WHERE t.charge_point_id IS NULL OR jsonb_populate_record(t, c.r) IS DISTINCT FROM t
UNION ALL
SELECT 'charging station', charge_point_id FROM charging_stations
WHERE city = %(city)s
  AND charge_point_id NOT IN (SELECT r ->> 'charge_point_id' FROM station_rows)
UNION ALL
SELECT 'EVSE', c.r ->> 'evse_id'
FROM point_rows AS c
LEFT JOIN charging_points AS t ON t.evse_id = c.r ->> 'evse_id'
WHERE t.evse_id IS NULL OR jsonb_populate_record(t, c.r) IS DISTINCT FROM t
UNION ALL
SELECT 'EVSE', p.evse_id FROM charging_points AS p JOIN charging_stations AS s
    USING (charge_point_id)
WHERE s.city = %(city)s AND p.evse_id NOT IN (SELECT r ->> 'evse_id' FROM point_rows);

-- name: lock_registry
-- Registry syncs take turns: a transaction-level advisory lock on ``key`` (core/registry.py).
SELECT pg_advisory_xact_lock(%(key)s);

-- name: ping
-- Whether the server answers at all (core.db.check_database).
SELECT 1;

-- name: timescaledb_installed
-- A row if the TimescaleDB extension is installed in this database.
SELECT 1 FROM pg_extension WHERE extname = 'timescaledb';

-- name: try_lead
-- Take the lock of a service's leadership for a city if no session holds it.
SELECT pg_try_advisory_lock(%(key)s);

-- name: new_term
-- The next leadership term of a service for a city, taken by its new leader.
INSERT INTO leader_terms (service, city, term, holder, since)
VALUES (%(service)s, %(city)s, 1, %(holder)s, %(since)s)
ON CONFLICT (service, city) DO UPDATE SET
    term = leader_terms.term + 1, holder = excluded.holder, since = excluded.since
RETURNING term;

-- name: leader_check
-- The leader's check that its session, and so its lock, is still there.
SELECT 1;

-- name: store_evse_reading
-- One status reading of a charging point (core.charging.store_readings): kept in evse_status
-- (a redelivered one adds nothing), and the point's current state set from it when it is
-- newer than what the state has; ``since`` moves only when the status changes. A row when the
-- state was set, with the status it had before (NULL: the point had none).
WITH stored AS (
    INSERT INTO evse_status (time, evse_id, status, source)
    VALUES (%(ts)s, %(evse_id)s, %(status)s, %(source)s)
    ON CONFLICT (evse_id, time) DO NOTHING
), prior AS (
    SELECT status FROM evse_state WHERE evse_id = %(evse_id)s
)
INSERT INTO evse_state (evse_id, status, since, updated, source)
VALUES (%(evse_id)s, %(status)s, %(ts)s, %(ts)s, %(source)s)
ON CONFLICT (evse_id) DO UPDATE SET
    status = excluded.status,
    since = CASE WHEN evse_state.status = excluded.status THEN evse_state.since
                 ELSE excluded.since END,
    updated = excluded.updated, source = excluded.source
WHERE evse_state.updated < excluded.updated
RETURNING evse_id, status, since, updated, source, (SELECT status FROM prior) AS previous;

-- name: notify_evse_state
-- Announce changed charging points on channel ``channel`` (core.channels.EVSE_STATE), heard
-- once the transaction commits.
SELECT pg_notify(%(channel)s, payload) FROM unnest(%(payloads)s::text[]) AS payload;

-- name: evse_effective
-- The charging points ``evse_ids`` read together with their bays at ``at`` (rules.sql).
SELECT evse_id, lot_id, status, reported, since, updated, source, occupied, free
FROM evse_effective(%(at)s, %(blocked_after_s)s, %(evse_ids)s);
