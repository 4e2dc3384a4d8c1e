-- Operator overrides made through the admin API, and the audit log of every admin action.

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

-- What a sign shows instead of its rendered content while the row is in force. ``content``
-- is {"lines": [{"label", "arrow", "text"}, ...]}, as in sign_log; the signage service reads
-- it on each notification of channel parkleit_sign_override and every resync.
CREATE TABLE sign_overrides (
    sign_id  text PRIMARY KEY REFERENCES signs (sign_id) ON DELETE CASCADE,
    content  jsonb NOT NULL,
    reason   text NOT NULL,
    set_by   text NOT NULL,
    since    timestamptz NOT NULL,
    until    timestamptz
);

-- One row per admin action: who (the API key's name, never the key), from where, what.
CREATE TABLE admin_audit (
    time      timestamptz NOT NULL,
    key_name  text NOT NULL,
    client    text,
    action    text NOT NULL,
    target    text,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX admin_audit_time_idx ON admin_audit (time DESC);
