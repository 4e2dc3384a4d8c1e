-- The console's sign modes and count corrections.

-- What an operator asked a sign to show: a mode (full, closed, blank, test, a fixed text)
-- rendered into ``content`` when it was set. The admin API's free overrides are ``text``.
ALTER TABLE sign_overrides ADD COLUMN mode text NOT NULL DEFAULT 'text'
    CHECK (mode IN ('full', 'closed', 'blank', 'test', 'text'));

-- When an operator last set a counter lot's count by hand (the console's count correction):
-- the lot carries the flag ``manual_correction`` for a day or until its next re-zeroing.
ALTER TABLE lot_state ADD COLUMN corrected_at timestamptz;

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
