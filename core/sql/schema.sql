-- parkleit schema: the current one, in one file (what the files in migrations/ build).
--
-- `parkleit db migrate` builds a fresh database from this file and stamps it with the
-- version of every file in migrations/; a database that has a version already gets the
-- migrations it has not seen (core.db.migrate). So this file changes with every migration,
-- and tests/core/test_migrations.py checks that both ways give the same catalog: tables, columns
-- (in the same order: an added column comes last here too), defaults, constraints, indexes,
-- views, functions and grants. migrations/0001_baseline.sql is the frozen first version.
-- The rules (functions and views such as bay_status) are in rules.sql, storage-engine
-- specifics (hypertables, continuous aggregates, or their plain-PostgreSQL stand-ins) in
-- timescale.sql / plain.sql; both are applied after this and the migrations on every migrate.
-- The services' privileges are in roles.sql.

-- Registry, loaded from the city config -------------------------------------------------------

CREATE TABLE lots (
    lot_id          text PRIMARY KEY,
    city            text NOT NULL,
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('garage', 'surface', 'on_street')),
    counting        text NOT NULL CHECK (counting IN ('counter', 'bays')),
    capacity        integer NOT NULL CHECK (capacity >= 0),
    disabled_spaces integer NOT NULL DEFAULT 0 CHECK (disabled_spaces >= 0),
    ev_spaces       integer NOT NULL DEFAULT 0 CHECK (ev_spaces >= 0),
    latitude        double precision NOT NULL,
    longitude       double precision NOT NULL,
    opening_hours   text NOT NULL DEFAULT '24/7',
    almost_full     real NOT NULL DEFAULT 0.9,
    full_at         real NOT NULL DEFAULT 1.0,
    stale_after_s   integer NOT NULL DEFAULT 900,
    counter_modulus bigint NOT NULL DEFAULT 65536,
    attributes      jsonb NOT NULL DEFAULT '{}',
    -- A bay sensor reporting one state longer than this is stuck (occupied, free), and
    -- when a counter may be re-zeroed (the lot is empty then).
    max_dwell_s     integer NOT NULL DEFAULT 172800 CHECK (max_dwell_s > 0),
    max_idle_s      integer NOT NULL DEFAULT 604800 CHECK (max_idle_s > 0),
    empty_at        time
);
CREATE INDEX lots_city_idx ON lots (city);

CREATE TABLE bays (
    bay_id   text PRIMARY KEY,
    lot_id   text NOT NULL REFERENCES lots (lot_id) ON DELETE CASCADE,
    kind     text NOT NULL DEFAULT 'standard' CHECK (kind IN ('standard', 'disabled', 'ev')),
    network  text NOT NULL DEFAULT 'native' CHECK (network IN ('native', 'ttn', 'chirpstack')),
    dev_eui  text UNIQUE
);
CREATE INDEX bays_lot_idx ON bays (lot_id);

CREATE TABLE signs (
    sign_id    text PRIMARY KEY,
    city       text NOT NULL,
    name       text NOT NULL,
    driver     text NOT NULL,
    address    text NOT NULL,
    latitude   double precision NOT NULL,
    longitude  double precision NOT NULL,
    lines      jsonb NOT NULL DEFAULT '[]'
);

-- Time series (hypertables under TimescaleDB) --------------------------------------------------

-- One row per bay sensor reading; (bay_id, time) makes a redelivered message a no-op.
CREATE TABLE bay_events (
    time      timestamptz NOT NULL,
    bay_id    text NOT NULL,
    occupied  boolean NOT NULL,
    seq       bigint,
    source    text NOT NULL,
    received  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bay_id, time)
);

-- Occupancy of a lot over time: counter readings, and bay-derived counts per write batch.
CREATE TABLE lot_occupancy (
    time      timestamptz NOT NULL,
    lot_id    text NOT NULL,
    occupied  integer NOT NULL,
    free      integer NOT NULL,
    capacity  integer NOT NULL,
    source    text NOT NULL CHECK (source IN ('counter', 'bays', 'history')),
    entries   bigint,
    exits     bigint,
    UNIQUE (lot_id, time)
);

-- Radio and battery state of a sensor at one moment.
CREATE TABLE sensor_health (
    time         timestamptz NOT NULL,
    sensor_id    text NOT NULL,
    battery_v    real,
    battery_pct  real,
    rssi         real,
    snr          real,
    gateway_id   text,
    frame_count  bigint,
    UNIQUE (sensor_id, time)
);

-- Live forecasts and backtest ones (the model's forecasts of the past, filling the
-- published-error window of a new installation), told apart by ``kind``: one key (lot,
-- horizon, origin) for both, so a live forecast replaces a backtest one of the same origin and
-- a backtest never replaces a live one; every reader of the current forecast asks for 'live'.
CREATE TABLE forecasts (
    time         timestamptz NOT NULL,
    lot_id       text NOT NULL,
    horizon_min  integer NOT NULL CHECK (horizon_min > 0),
    target_time  timestamptz NOT NULL,
    free         real NOT NULL,
    free_p10     real,
    free_p90     real,
    p_space      real,
    model        text NOT NULL,
    UNIQUE (lot_id, horizon_min, time),
    kind         text NOT NULL DEFAULT 'live' CHECK (kind IN ('live', 'backtest'))
);

-- Every push to a sign: what it was to show, whether it went through, and the sign's answer
-- (driver-specific, e.g. message and CRC) or the reason it did not.
-- ``term``: the leadership term of the signage instance that pushed (leader_terms).
CREATE TABLE sign_log (
    time      timestamptz NOT NULL,
    sign_id   text NOT NULL,
    content   jsonb NOT NULL,
    ok        boolean NOT NULL,
    error     text,
    ack       text,
    term      bigint
);
CREATE INDEX sign_log_sign_time_idx ON sign_log (sign_id, time DESC);

-- Current values ---------------------------------------------------------------------------------

-- ``since``: when the bay's state last changed (a state held too long is a stuck sensor).
CREATE TABLE bay_state (
    bay_id    text PRIMARY KEY REFERENCES bays (bay_id) ON DELETE CASCADE,
    occupied  boolean NOT NULL,
    time      timestamptz NOT NULL,
    since     timestamptz NOT NULL
);

-- A lot's current figures and status as ingest last derived them, its quality score with the
-- reasons (flags), its counter's readings, when the counter was last re-zeroed and last jumped,
-- and when an operator last set its count by hand (the console's count correction).
CREATE TABLE lot_state (
    lot_id          text PRIMARY KEY REFERENCES lots (lot_id) ON DELETE CASCADE,
    free            integer,
    occupied        integer,
    capacity        integer NOT NULL,
    status          text NOT NULL DEFAULT 'unknown'
                    CHECK (status IN ('open', 'almost_full', 'full', 'closed', 'unknown')),
    updated         timestamptz,
    counter_entries bigint,
    counter_exits   bigint,
    counter_time    timestamptz,
    quality         real CHECK (quality BETWEEN 0 AND 1),
    flags           text[] NOT NULL DEFAULT '{}',
    rezeroed_on     date,
    drift           integer,
    counter_jump_at timestamptz,
    corrected_at    timestamptz
);

-- Everything ingest could not use, with the reason. One row per distinct (topic, payload).
CREATE TABLE dead_letters (
    id             bigserial PRIMARY KEY,
    received       timestamptz NOT NULL DEFAULT now(),
    last_received  timestamptz NOT NULL DEFAULT now(),
    occurrences    integer NOT NULL DEFAULT 1,
    topic          text NOT NULL,
    payload        bytea NOT NULL,
    payload_size   integer NOT NULL,
    digest         bytea NOT NULL,
    reason         text NOT NULL,
    UNIQUE (topic, digest)
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received DESC);

-- Forecasting ------------------------------------------------------------------------------------

-- Trained models as versioned artefacts shared by every forecaster process. Small: a plain
-- table with or without TimescaleDB, as forecast_accuracy.
CREATE TABLE forecast_models (
    version       text PRIMARY KEY,
    city          text NOT NULL,
    created_at    timestamptz NOT NULL,
    kind          text NOT NULL,
    trained_from  timestamptz NOT NULL,
    trained_to    timestamptz NOT NULL,
    lots          text[] NOT NULL,
    examples      integer,
    reason        text,
    metrics       jsonb NOT NULL DEFAULT '{}',
    artefact      bytea NOT NULL
);
CREATE INDEX forecast_models_city_created_idx ON forecast_models (city, created_at DESC);

-- Rolling mean absolute error per lot and horizon over the last window_days, refreshed after
-- each prediction run; mae_rate is the error as a share of the lot's capacity; backtest_points
-- of the scored points are backtest forecasts (0 once live forecasts fill the window).
CREATE TABLE forecast_accuracy (
    lot_id       text NOT NULL REFERENCES lots (lot_id) ON DELETE CASCADE,
    horizon_min  integer NOT NULL CHECK (horizon_min > 0),
    window_days  integer NOT NULL CHECK (window_days > 0),
    mae          real NOT NULL,
    mae_rate     real,
    points       integer NOT NULL CHECK (points > 0),
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (lot_id, horizon_min),
    backtest_points integer NOT NULL DEFAULT 0
        CHECK (backtest_points >= 0 AND backtest_points <= points)
);

-- Signs and operators ----------------------------------------------------------------------------

-- One row per sign: what it last confirmed showing and since when, its last ack and its
-- failures. ``content`` is {"lines": [{"label", "arrow", "text"}, ...]}, as in sign_log.
CREATE TABLE sign_state (
    sign_id               text PRIMARY KEY REFERENCES signs (sign_id) ON DELETE CASCADE,
    content               jsonb,
    shown_since           timestamptz,
    last_ack              timestamptz,
    last_error            text,
    last_error_at         timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    updated               timestamptz NOT NULL
);

-- A lot closed by an operator (works, an event, a flood). While a row is in force (``until``
-- NULL or ahead) ingest derives the status ``closed`` for the lot, whatever its count, so
-- lot_state, the status topic, the signs, the API and DATEX II all say closed.
CREATE TABLE lot_closures (
    lot_id     text PRIMARY KEY REFERENCES lots (lot_id) ON DELETE CASCADE,
    reason     text NOT NULL,
    closed_by  text NOT NULL,
    since      timestamptz NOT NULL,
    until      timestamptz
);

-- A counter lot's capacity reduced for a while by an operator (a level closed for works).
-- While a row is in force (``until`` ahead) ingest counts the lot's free spaces and status
-- against it, and the API shows it as the lot's capacity; the count itself is not cut.
CREATE TABLE lot_capacity_limits (
    lot_id    text PRIMARY KEY REFERENCES lots (lot_id) ON DELETE CASCADE,
    capacity  integer NOT NULL CHECK (capacity >= 0),
    reason    text NOT NULL,
    set_by    text NOT NULL,
    since     timestamptz NOT NULL,
    until     timestamptz NOT NULL
);

-- What a sign shows instead of its rendered content while the row is in force. ``content``
-- is {"lines": [{"label", "arrow", "text"}, ...]}, as in sign_log; the signage service reads
-- it on each notification of channel parkleit_sign_override and every resync. ``mode`` is what
-- was asked (the console's modes; the admin API's free overrides are ``text``).
CREATE TABLE sign_overrides (
    sign_id  text PRIMARY KEY REFERENCES signs (sign_id) ON DELETE CASCADE,
    content  jsonb NOT NULL,
    reason   text NOT NULL,
    set_by   text NOT NULL,
    since    timestamptz NOT NULL,
    until    timestamptz,
    mode     text NOT NULL DEFAULT 'text'
             CHECK (mode IN ('full', 'closed', 'blank', 'test', 'text'))
);

-- One row per admin or console action: who (an API key's name, never the key, or a person of
-- the console: exactly one), from where, what, and what was there before and after.
CREATE TABLE admin_audit (
    time       timestamptz NOT NULL,
    key_name   text,
    client     text,
    action     text NOT NULL,
    target     text,
    detail     jsonb NOT NULL DEFAULT '{}',
    user_name  text,
    before     jsonb,
    after      jsonb,
    CONSTRAINT admin_audit_actor CHECK (num_nonnulls(key_name, user_name) = 1)
);
CREATE INDEX admin_audit_time_idx ON admin_audit (time DESC);

-- Operator console ------------------------------------------------------------------------------

-- A person who may use the console. ``password_hash`` is self-describing
-- (``scrypt$n$r$p$salt$hash``, api._keys.hash_key); the password itself is stored nowhere.
-- A disabled person's sessions stop working at once (the session check joins this row).
CREATE TABLE console_users (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,39}$'),
    role           text NOT NULL CHECK (role IN ('planner', 'operator', 'admin')),
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created        timestamptz NOT NULL
);

-- A logged-in browser. ``token_hash`` is the SHA-256 of the cookie's token (a stolen table
-- logs no one in); the CSRF token is the one every write must carry in X-CSRF-Token.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY,
    user_name   text NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created     timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    expires     timestamptz NOT NULL
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_name);

-- Alarms of the operator console: raised by ingest's evaluator (ingest/alarms.sql) when a
-- cause appears, cleared when it is gone; acknowledged by a person (acknowledged is not
-- cleared). One row per occurrence: a cause that comes back is a new alarm.
CREATE TABLE alarms (
    id               bigserial PRIMARY KEY,
    city             text NOT NULL,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,39}$'),
    severity         text NOT NULL CHECK (severity IN ('warning', 'critical')),
    target           text NOT NULL,
    since            timestamptz NOT NULL,
    cleared_at       timestamptz,
    detail           jsonb NOT NULL DEFAULT '{}',
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    ack_comment      text,
    CONSTRAINT alarms_cleared_after_since CHECK (cleared_at >= since),
    CONSTRAINT alarms_ack_complete
        CHECK (num_nonnulls(acknowledged_by, acknowledged_at, ack_comment) IN (0, 3))
);
-- At most one open alarm per cause (what, where); ingest raises with ON CONFLICT DO NOTHING,
-- so workers side by side raise it once.
CREATE UNIQUE INDEX alarms_open_idx ON alarms (city, kind, target) WHERE cleared_at IS NULL;
CREATE INDEX alarms_city_since_idx ON alarms (city, since DESC);

-- Leadership among replicas (core/leader.py): the newest term of each service and city, and
-- which instance holds it. The lock itself is an advisory lock of the leader's session.
CREATE TABLE leader_terms (
    service  text NOT NULL,
    city     text NOT NULL,
    term     bigint NOT NULL,
    holder   text NOT NULL,
    since    timestamptz NOT NULL,
    PRIMARY KEY (service, city)
);

-- Events planners enter in the console (a concert, a football match, the Christmas market):
-- a time window of a city; the lots whose demand it raises (the forecaster's event flag, as
-- the city config's events), the lots closed during it and the lots reserved for it (closed to
-- the public). Ingest and the API's lot views read the closures and reservations in force
-- as they read lot_closures.
CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    city           text NOT NULL,
    name           text NOT NULL,
    starts         timestamptz NOT NULL,
    ends           timestamptz NOT NULL,
    lots           text[] NOT NULL DEFAULT '{}',
    closed_lots    text[] NOT NULL DEFAULT '{}',
    reserved_lots  text[] NOT NULL DEFAULT '{}',
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT events_ends_after_starts CHECK (ends > starts)
);
CREATE INDEX events_city_ends_idx ON events (city, ends);

-- Electromobility ------------------------------------------------------------------------------

-- Electromobility: the charging stations of the city config (a station is one OCPP charge
-- point, ``charge_point_id`` its OCPP identity) on their site lot, their charging points
-- (EVSEs) with the bays each serves and its connectors (OCPI 2.2.1 terms, as in the config),
-- every status a point reported (hypertable) and its current state. The registry tables are
-- written by db migrate / the registry sync like lots; evse_status and evse_state by
-- core.charging.store_readings.
CREATE TABLE charging_stations (
    charge_point_id  text PRIMARY KEY,
    city             text NOT NULL,
    lot_id           text NOT NULL REFERENCES lots (lot_id) ON DELETE CASCADE,
    name             text NOT NULL,
    operator         text NOT NULL,
    protocol         text NOT NULL CHECK (protocol IN ('ocpp', 'ocpi', 'mqtt')),
    bnetza_id        text,
    latitude         double precision NOT NULL,
    longitude        double precision NOT NULL
);
CREATE INDEX charging_stations_city_idx ON charging_stations (city);

CREATE TABLE charging_points (
    evse_id          text PRIMARY KEY,
    charge_point_id  text NOT NULL
                     REFERENCES charging_stations (charge_point_id) ON DELETE CASCADE,
    number           integer NOT NULL CHECK (number >= 1),
    bays             text[] NOT NULL DEFAULT '{}',
    connectors       jsonb NOT NULL DEFAULT '[]',
    tariff           text,
    UNIQUE (charge_point_id, number)
);

-- One row per status reading of a point; (evse_id, time) makes a redelivered one a no-op.
CREATE TABLE evse_status (
    time      timestamptz NOT NULL,
    evse_id   text NOT NULL,
    status    text NOT NULL CHECK (status IN ('AVAILABLE', 'BLOCKED', 'CHARGING', 'INOPERATIVE',
                                              'OUTOFORDER', 'PLANNED', 'REMOVED', 'RESERVED',
                                              'UNKNOWN')),
    source    text NOT NULL CHECK (source IN ('mqtt', 'ocpp', 'ocpi', 'console')),
    received  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (evse_id, time)
);

-- A point's newest status: ``since`` when it last changed, ``updated`` its newest reading.
CREATE TABLE evse_state (
    evse_id  text PRIMARY KEY REFERENCES charging_points (evse_id) ON DELETE CASCADE,
    status   text NOT NULL CHECK (status IN ('AVAILABLE', 'BLOCKED', 'CHARGING', 'INOPERATIVE',
                                             'OUTOFORDER', 'PLANNED', 'REMOVED', 'RESERVED',
                                             'UNKNOWN')),
    since    timestamptz NOT NULL,
    updated  timestamptz NOT NULL,
    source   text NOT NULL CHECK (source IN ('mqtt', 'ocpp', 'ocpi', 'console'))
);
