-- The operator console: people log in (not shared keys), and the audit names the person.

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

-- Who acted: an API key (machines) or a person (the console), exactly one of them; what was
-- there before and what after the action.
ALTER TABLE admin_audit ALTER COLUMN key_name DROP NOT NULL;
ALTER TABLE admin_audit ADD COLUMN user_name text;
ALTER TABLE admin_audit ADD COLUMN before jsonb;
ALTER TABLE admin_audit ADD COLUMN after jsonb;
ALTER TABLE admin_audit ADD CONSTRAINT admin_audit_actor
    CHECK (num_nonnulls(key_name, user_name) = 1);
