-- Forecasting: trained models as versioned artefacts shared by every forecaster process, and
-- the published error of past forecasts. Both tables stay small, so they are plain tables
-- (no hypertables) with or without TimescaleDB.

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
-- each prediction run; mae_rate is the error as a share of the lot's capacity.
CREATE TABLE forecast_accuracy (
    lot_id       text NOT NULL REFERENCES lots (lot_id) ON DELETE CASCADE,
    horizon_min  integer NOT NULL CHECK (horizon_min > 0),
    window_days  integer NOT NULL CHECK (window_days > 0),
    mae          real NOT NULL,
    mae_rate     real,
    points       integer NOT NULL CHECK (points > 0),
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (lot_id, horizon_min)
);
