-- parkleit schema, version 1 (the baseline), frozen: later changes are the numbered files after
-- it, and ../schema.sql is the current schema in one file.
-- Storage-engine specifics (hypertables, continuous aggregates, or their plain-PostgreSQL
-- stand-ins) live in timescale.sql / plain.sql and are applied after this on every migrate.

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
    attributes      jsonb NOT NULL DEFAULT '{}'
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
    UNIQUE (lot_id, horizon_min, time)
);

CREATE TABLE sign_log (
    time      timestamptz NOT NULL,
    sign_id   text NOT NULL,
    content   jsonb NOT NULL,
    ok        boolean NOT NULL,
    error     text
);
CREATE INDEX sign_log_sign_time_idx ON sign_log (sign_id, time DESC);

-- Current values ---------------------------------------------------------------------------------

CREATE TABLE bay_state (
    bay_id    text PRIMARY KEY REFERENCES bays (bay_id) ON DELETE CASCADE,
    occupied  boolean NOT NULL,
    time      timestamptz NOT NULL
);

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
    counter_time    timestamptz
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
