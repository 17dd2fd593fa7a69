-- Schema shared by SQLite and Postgres. Idempotent on purpose: when several
-- instances race on a fresh SQLite file, the loser re-runs harmlessly.
CREATE TABLE IF NOT EXISTS messages (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);

INSERT INTO messages (id, body)
VALUES (1, 'Hello from the database! This greeting was seeded by a migration.')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS hits (
    instance_id TEXT PRIMARY KEY,
    count       BIGINT NOT NULL DEFAULT 0
);
