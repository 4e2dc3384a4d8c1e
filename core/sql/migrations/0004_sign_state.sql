-- Signage: the health of every sign, kept current by the signage service, and the sign's
-- acknowledgement next to each audited push.

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

-- What the sign answered to a push that went through (driver-specific, e.g. message and CRC);
-- ``error`` holds the reason of one that did not.
ALTER TABLE sign_log ADD COLUMN ack text;
