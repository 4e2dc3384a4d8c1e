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
LIMIT 1;

-- name: may_write_registry
-- Whether this session's role may write the registry: db migrate's may, a service's own role
-- (core/sql/roles.sql) may only read it.
SELECT has_table_privilege('lots', 'INSERT') AND has_table_privilege('bays', 'INSERT')
       AND has_table_privilege('signs', 'INSERT') AS may_write;

-- name: registry_differences
-- What keeps the registry from matching a city's config, for a role that may only read it:
-- the config's lots, bays and signs (JSON arrays of rows as upsert_* takes them) that are
-- missing or differ in a column the config sets (compared after PostgreSQL read the config's
-- values into the columns' types, as an upsert would have), and the city's rows the config
-- does not have. No rows: the registry matches.
WITH lot_rows AS (SELECT r FROM jsonb_array_elements(%(lots)s::jsonb) AS r),
     bay_rows AS (SELECT r FROM jsonb_array_elements(%(bays)s::jsonb) AS r),
     sign_rows AS (SELECT r FROM jsonb_array_elements(%(signs)s::jsonb) AS r)
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
WHERE city = %(city)s AND sign_id NOT IN (SELECT r ->> 'sign_id' FROM sign_rows);

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
