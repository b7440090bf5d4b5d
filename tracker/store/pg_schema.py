"""PostgreSQL schema migrations, applied in order by the driver shared with SQLite (:func:`schema.apply`).

``0001_initial`` is SQLite's 0001..0007 in one step (a PostgreSQL store starts at today's
schema); later migrations keep the same names on both backends. JSON columns are ``json``
(not ``jsonb``), which keeps the text as written: params and metrics list their keys in the
order they were logged, and an infinite metric stays ``1e999`` (see ``metrics_json``).
``seq`` columns give the insertion order SQLite's ``rowid`` gives. Each migration runs in
its own transaction under an advisory lock, so processes opening a new store at once are safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracker.store.schema import PARAMS_TABLE, RUN_COLUMNS, apply

LOCK_KEY = 0x7472616B  # pg_advisory_xact_lock key of tracker's migrations ("trak")


def _m0001_initial(cur: Any) -> None:
    cur.execute(
        """
        CREATE TABLE experiments (
            name TEXT PRIMARY KEY,
            config JSON NOT NULL,
            config_hash TEXT NOT NULL,
            updated TEXT NOT NULL
        );
        CREATE TABLE environments (
            id TEXT PRIMARY KEY,
            data JSON NOT NULL
        );
        CREATE TABLE trials (
            id TEXT PRIMARY KEY,
            seq BIGSERIAL NOT NULL,
            run_id TEXT,
            experiment TEXT NOT NULL,
            status TEXT NOT NULL,
            seed BIGINT,
            params JSON NOT NULL DEFAULT '{}',
            metrics JSON NOT NULL DEFAULT '{}',
            step BIGINT,
            command JSON NOT NULL DEFAULT '[]',
            """ + RUN_COLUMNS + """
            handle JSON NOT NULL DEFAULT '{}',
            owner JSON NOT NULL DEFAULT '{}',
            pid BIGINT,
            env_id TEXT REFERENCES environments(id),
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            beat DOUBLE PRECISION,
            lease DOUBLE PRECISION,
            stop_requested TEXT,
            duration DOUBLE PRECISION,
            exit_code INTEGER,
            error TEXT,
            extra JSON NOT NULL DEFAULT '{}',
            tags JSON NOT NULL DEFAULT '[]',
            note TEXT
        );
        CREATE INDEX trials_experiment ON trials(experiment, created, seq);
        CREATE INDEX trials_status ON trials(status);
        CREATE INDEX trials_created ON trials(created, seq);
        CREATE INDEX trials_run ON trials(run_id);
        CREATE INDEX trials_fingerprint ON trials((extra ->> 'fingerprint'));
        CREATE INDEX trials_optimization ON trials((extra ->> 'optimization'));
        """ + PARAMS_TABLE + """
        CREATE TABLE metrics (
            seq BIGSERIAL PRIMARY KEY,
            trial_id TEXT NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            step BIGINT,
            value DOUBLE PRECISION NOT NULL,
            phase TEXT,
            ts TEXT
        );
        CREATE INDEX metrics_trial_value ON metrics(trial_id, name, value, step);
        CREATE TABLE artifacts (
            trial_id TEXT NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (trial_id, path)
        );
        CREATE TABLE events (
            id BIGSERIAL PRIMARY KEY,
            trial_id TEXT REFERENCES trials(id) ON DELETE CASCADE,
            ts TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX events_trial ON events(trial_id, id);
        CREATE TABLE tags (
            trial_id TEXT NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            PRIMARY KEY (trial_id, name)
        );
        CREATE INDEX tags_name ON tags(name);
        CREATE TABLE optimizations (
            id TEXT PRIMARY KEY,
            seq BIGSERIAL NOT NULL,
            experiment TEXT NOT NULL,
            strategy TEXT NOT NULL,
            settings JSON NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            created TEXT NOT NULL,
            finished TEXT,
            error TEXT,
            owner JSON NOT NULL DEFAULT '{}',
            commit_sha TEXT
        );
        CREATE TABLE configurations (
            optimization_id TEXT NOT NULL REFERENCES optimizations(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            params JSON NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            created TEXT NOT NULL,
            value DOUBLE PRECISION,
            seed_values JSON NOT NULL DEFAULT '{}',
            step BIGINT,
            error TEXT,
            finished TEXT,
            PRIMARY KEY (optimization_id, number)
        )
        """
    )


def _m0008_queue(cur: Any) -> None:
    """Queue trials (which queue, attempts, every attempt's error), the workers that claim them, and
    content-addressed blobs (code patches, resolved configs) a worker on another machine reads. Expiry
    reads the trials someone owns (a heartbeat), not the many waiting in a queue."""
    cur.execute(
        """
        ALTER TABLE trials ADD COLUMN queue TEXT;
        ALTER TABLE trials ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE trials ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE trials ADD COLUMN errors JSON NOT NULL DEFAULT '[]';
        CREATE INDEX trials_queue ON trials(queue, status, created, seq);
        CREATE INDEX trials_owned ON trials(status) WHERE beat IS NOT NULL;
        CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            seq BIGSERIAL NOT NULL,
            queue TEXT NOT NULL,
            host TEXT NOT NULL,
            pid BIGINT NOT NULL,
            slots INTEGER NOT NULL,
            started TEXT NOT NULL,
            beat DOUBLE PRECISION,
            lease DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            running JSON NOT NULL DEFAULT '[]',
            done INTEGER NOT NULL DEFAULT 0,
            info JSON NOT NULL DEFAULT '{}'
        );
        CREATE TABLE blobs (
            sha256 TEXT PRIMARY KEY,
            data BYTEA NOT NULL,
            size BIGINT NOT NULL
        )
        """
    )


def _m0009_test_uses(cur: Any) -> None:
    """Every ``tracker test`` run, by configuration and code, apart from the trials that deleting removes."""
    from tracker.store.schema import TEST_USES_DDL

    cur.execute(TEST_USES_DDL)


MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = [
    ("0001_initial", _m0001_initial),
    ("0008_queue", _m0008_queue),
    ("0009_test_uses", _m0009_test_uses),
]


def migrate(conn: Any, upto: str | None = None) -> list[str]:
    """Apply pending migrations (up to and including ``upto``) to a psycopg connection; return the names applied."""
    def locked(cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))

    def applied() -> set[str]:
        import psycopg

        try:  # the common case, a store already set up: one plain read, no lock, no DDL
            with conn.cursor() as cur:
                cur.execute("SELECT name FROM schema_migrations")
                return {row[0] for row in cur.fetchall()}
        except psycopg.errors.UndefinedTable:
            pass
        with conn.transaction(), conn.cursor() as cur:
            locked(cur)  # two first opens must not both create the table
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
            cur.execute("SELECT name FROM schema_migrations")
            return {row[0] for row in cur.fetchall()}

    def step(name: str, func: Callable[[Any], None]) -> bool:
        with conn.transaction(), conn.cursor() as cur:
            locked(cur)
            cur.execute("SELECT 1 FROM schema_migrations WHERE name = %s", (name,))
            if cur.fetchone():
                return False
            func(cur)
            cur.execute("INSERT INTO schema_migrations (name, applied) VALUES (%s, to_char(now() AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD HH24:MI:SS'))", (name,))
            return True

    return apply(MIGRATIONS, applied, step, upto=upto)
