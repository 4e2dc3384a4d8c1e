-- Backtest forecasts: after a model is trained, the part of the published-error window before
-- the first live forecast is filled with the forecasts the model would have made, so a new
-- installation publishes its forecast error from the first day. They live in ``forecasts``
-- beside the live ones, told apart by ``kind``: one key (lot, horizon, origin) for both, so a
-- live forecast replaces a backtest one of the same origin and a backtest never replaces a
-- live one; every reader of the current forecast asks for kind 'live'.
ALTER TABLE forecasts
    ADD COLUMN kind text NOT NULL DEFAULT 'live' CHECK (kind IN ('live', 'backtest'));

-- How many of the scored points of the published error are backtest forecasts (0 once live
-- forecasts fill the window).
ALTER TABLE forecast_accuracy
    ADD COLUMN backtest_points integer NOT NULL DEFAULT 0
        CHECK (backtest_points >= 0 AND backtest_points <= points);
