"""Apply the SQL files in `loyalnest/migrations/` in order, each once, recorded in a table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant shared by all runners: concurrent bootstraps wait for each other.
ADVISORY_LOCK_ID = 0x10_7A_1_7E57

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(RuntimeError):
    """A migration failed, or an applied one was edited after the fact."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def apply_migrations(
    conn: psycopg.Connection[tuple[object, ...]], migrations: list[Migration]
) -> list[Migration]:
    """Apply pending migrations, each in its own transaction; return the ones applied now."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_ID,))
    try:
        conn.execute(CREATE_TABLE)
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        applied: dict[object, object] = {row[0]: row[1] for row in rows}
        pending = [m for m in migrations if _is_pending(m, applied)]
        for migration in pending:
            _apply(conn, migration)
        return pending
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))


def _is_pending(migration: Migration, applied: dict[object, object]) -> bool:
    if migration.version not in applied:
        return True
    if applied[migration.version] != migration.checksum:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
            "add a new migration instead of editing an applied one"
        )
    return False


def _apply(conn: psycopg.Connection[tuple[object, ...]], migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.version:04d}_{migration.name}: {exc}") from exc
