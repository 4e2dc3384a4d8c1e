-- The services' database roles and what each may do: the documented list (docs/operations.md,
-- "Database roles"). `parkleit db migrate` with PARKLEIT_DB_ROLES=true applies this file after
-- the schema, in one transaction, on every run: the roles that do not exist yet are created
-- first (core.db.apply_roles), then every privilege they hold on this database's tables,
-- views and sequences is taken away and the ones below are granted. So this file is the whole
-- truth: a privilege granted by hand is gone after the next migrate, and a new table is
-- reachable by no service until it is listed here. Whoever runs db migrate owns the schema and
-- keeps everything; the services never own anything.
--
-- {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi}: the role names (PARKLEIT_DB_ROLE_PREFIX + service);
-- {database}: this database. Values are identifiers, put in by psycopg.sql, never text.

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};

-- Nothing but their own temporary tables (ingest's staging): no CREATE anywhere (PostgreSQL
-- 15 no longer gives PUBLIC CREATE on the schema public; older servers did).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};
GRANT USAGE ON SCHEMA public TO {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};

-- The registry (lots, bays, signs) is written by db migrate only. Every service reads it:
-- a service whose role may not write it checks that it matches its city config instead of
-- syncing it (core.registry.sync_registry), and stops naming the difference if not.
GRANT SELECT ON lots, bays, signs, charging_stations, charging_points
    TO {api}, {ingest}, {signage}, {forecast}, {ocpp}, {ocpi};

-- The rules written once in SQL (migrations 0006, 0009): EXECUTE is PUBLIC's by default, granted
-- here as well so that an installation revoking it from PUBLIC keeps working.
GRANT EXECUTE ON FUNCTION bay_stuck(boolean, timestamptz, integer, integer, timestamptz)
    TO {api}, {ingest}, {signage}, {ocpp}, {ocpi};
GRANT EXECUTE ON FUNCTION bay_status(timestamptz) TO {api}, {ingest}, {signage}, {ocpp}, {ocpi};
GRANT EXECUTE ON FUNCTION sensor_status(timestamptz) TO {api}, {ingest};
GRANT EXECUTE ON FUNCTION evse_effective(timestamptz, integer, text[])
    TO {api}, {ingest}, {signage}, {ocpp}, {ocpi};
GRANT EXECUTE ON FUNCTION time_bucket(interval, timestamptz) TO {api}, {forecast};
-- Runs as its owner (SECURITY DEFINER): the API's role learns which bays were silent or stuck
-- in a month (the console's report) without reading bay_events.
GRANT EXECUTE ON FUNCTION bay_faults(text[], timestamptz, timestamptz) TO {api};
GRANT EXECUTE ON FUNCTION evse_blocked_hours(text[], integer, timestamptz, timestamptz) TO {api};

-- api: reads what it serves (live state, history from the aggregates, forecasts and their
-- error, sensor health for the dashboard, signs and their log); writes only what the admin
-- routes change: closures, capacity limits, sign overrides, a lot's status (set at once on
-- closing) and count (an operator's correction), the audit (insert, and read for the
-- console's audit page: no service can change it), the console's sessions; reads the
-- console's people (db migrate's owner, the CLI, writes them). Of the models only their age
-- (/metrics/city), not the artefacts. Nothing of ingest's raw data or dead letters.
GRANT SELECT ON lot_state, bay_state, lot_occupancy, lot_occupancy_15m, lot_occupancy_1h,
    forecasts, forecast_accuracy, forecast_scores, sensor_health, sensor_state, sign_log,
    sign_state, schema_migrations TO {api};
GRANT SELECT (city, created_at) ON forecast_models TO {api};
-- A count an operator corrects (the console) is set at once, as ingest's new baseline; the
-- counter's readings stay ingest's.
GRANT UPDATE (status, free, occupied, updated, flags, corrected_at) ON lot_state TO {api};
GRANT SELECT, INSERT, UPDATE, DELETE ON lot_closures, lot_capacity_limits, sign_overrides
    TO {api};
GRANT SELECT, INSERT ON admin_audit TO {api};
GRANT SELECT ON console_users TO {api};
-- An admin of the console adds and disables people (never deletes them: the audit names them).
GRANT INSERT (name, role, password_hash, created), UPDATE (disabled) ON console_users TO {api};
GRANT SELECT, INSERT, UPDATE, DELETE ON console_sessions TO {api};
-- The alarms: read, and acknowledged by a person (never raised or cleared by the API).
GRANT SELECT ON alarms TO {api};
GRANT UPDATE (acknowledged_by, acknowledged_at, ack_comment) ON alarms TO {api};
-- The events planners enter in the console (migration 0014): entered, listed, deleted.
GRANT SELECT, INSERT, DELETE ON events TO {api};
-- The chargers' status (migration 0015): the current state and its history.
GRANT SELECT ON evse_state, evse_status TO {api};
-- OCPI peers' pushes (api/routers/ocpi.py) store their points' status.
GRANT INSERT ON evse_status TO {api};
GRANT INSERT, UPDATE ON evse_state TO {api};

-- ingest: writes the sensor data and the lot state derived from it; reads the operators'
-- closures and capacity limits, and the events' closures and reservations. Never deletes anything.
GRANT SELECT, INSERT ON bay_events, lot_occupancy, sensor_health TO {ingest};
GRANT SELECT, INSERT, UPDATE ON bay_state, dead_letters TO {ingest};
GRANT SELECT, UPDATE ON lot_state TO {ingest};
GRANT SELECT ON lot_closures, lot_capacity_limits, events TO {ingest};
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO {ingest};
-- Charging points' status from MQTT (core.charging.store_readings): history and current state.
GRANT SELECT, INSERT ON evse_status TO {ingest};
GRANT SELECT, INSERT, UPDATE ON evse_state TO {ingest};
-- The alarms' evaluator (ingest/alarms.sql) raises and clears them from what the other parts
-- record: sensor health, the signs' state, the published forecast error. It never touches a
-- person's acknowledgement.
GRANT SELECT ON sensor_state, sign_state, forecast_accuracy TO {ingest};
GRANT SELECT, INSERT ON alarms TO {ingest};
GRANT UPDATE (cleared_at) ON alarms TO {ingest};
GRANT USAGE ON SEQUENCE alarms_id_seq TO {ingest};
-- Its workers' leadership of the alarms' evaluation (core/leader.py).
GRANT SELECT, INSERT, UPDATE ON leader_terms TO {ingest};

-- signage: its audit log (insert only) and the health of its signs; reads the lot state,
-- the forecasts and the operators' overrides.
GRANT INSERT ON sign_log TO {signage};
GRANT SELECT, INSERT, UPDATE ON leader_terms TO {signage}, {forecast};
GRANT SELECT, INSERT, UPDATE ON sign_state TO {signage};
GRANT SELECT ON lot_state, forecasts, sign_overrides TO {signage};
-- ... and the charging points read with their bays (evse_effective), for charging lines.
GRANT SELECT ON evse_state, bay_state TO {signage};

-- forecast: its models, forecasts and published error; reads the occupancy it learns from.
GRANT SELECT ON lot_occupancy, forecast_scores TO {forecast};
-- The console's events, which the forecaster takes as it takes the city config's.
GRANT SELECT ON events TO {forecast};
GRANT SELECT, INSERT ON forecast_models TO {forecast};
-- A model's metrics take what its backtest found (out of sample or not).
GRANT UPDATE (metrics) ON forecast_models TO {forecast};
GRANT SELECT, INSERT, UPDATE ON forecasts TO {forecast};
GRANT SELECT, INSERT, UPDATE, DELETE ON forecast_accuracy TO {forecast};

-- ocpp (the central system, every city) and ocpi (the pull, per city, under leadership): the
-- charging points' status they hear (core.charging.store_readings: history and current
-- state), and what they refuse as dead letters (a repeat counts its occurrences: of the dead
-- letters they read only the columns that count takes, no payload). Of the parking data only
-- the state of the bays a point serves: they publish its effective state (evse_effective).
-- (A reading stored twice adds nothing: ON CONFLICT (evse_id, time) reads those columns.)
GRANT INSERT, SELECT (evse_id, time) ON evse_status TO {ocpp}, {ocpi};
GRANT SELECT, INSERT, UPDATE ON evse_state TO {ocpp}, {ocpi};
GRANT INSERT, SELECT (topic, digest, occurrences, last_received),
    UPDATE (occurrences, last_received)
    ON dead_letters TO {ocpp}, {ocpi};
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO {ocpp}, {ocpi};
GRANT SELECT, INSERT, UPDATE ON leader_terms TO {ocpi};
GRANT SELECT ON bay_state TO {ocpp}, {ocpi};
