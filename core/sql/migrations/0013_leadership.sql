-- Leadership among replicas (core/leader.py): one instance of signage (and, later, of the
-- forecaster) per city acts, the others stand by. Each leadership has a term, one more than
-- the last; the signs' log records the term of the leader that pushed.

CREATE TABLE leader_terms (
    service  text NOT NULL,
    city     text NOT NULL,
    term     bigint NOT NULL,
    holder   text NOT NULL,
    since    timestamptz NOT NULL,
    PRIMARY KEY (service, city)
);

ALTER TABLE sign_log ADD COLUMN term bigint;
