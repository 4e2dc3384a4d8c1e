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
