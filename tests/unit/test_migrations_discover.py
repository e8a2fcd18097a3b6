"""Finding the SQL migrations on disk (applying them needs a server and is not tested here)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from loyalnest.bootstrap.migrations import MIGRATIONS_DIR, Migration, MigrationError, discover


def write(directory: Path, name: str, sql: str = "SELECT 1;\n") -> None:
    (directory / name).write_text(sql, encoding="utf-8")


def test_migrations_are_returned_sorted_by_version(tmp_path: Path) -> None:
    write(tmp_path, "0010_tenth.sql", "-- ten\n")
    write(tmp_path, "0002_second.sql", "-- two\n")
    write(tmp_path, "0001_first.sql", "-- one\n")

    migrations = discover(tmp_path)

    assert migrations == [
        Migration(1, "first", "-- one\n"),
        Migration(2, "second", "-- two\n"),
        Migration(10, "tenth", "-- ten\n"),
    ]


def test_files_not_ending_in_sql_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "0001_first.sql")
    write(tmp_path, "README.md")
    (tmp_path / "__init__.py").touch()

    assert [m.version for m in discover(tmp_path)] == [1]


def test_empty_directory_has_no_migrations(tmp_path: Path) -> None:
    assert discover(tmp_path) == []


@pytest.mark.parametrize(
    "name",
    [
        "1_first.sql",
        "00001_first.sql",
        "0001-first.sql",
        "0001_First.sql",
        "0001_.sql",
        "init.sql",
        "0001_first table.sql",
    ],
)
def test_badly_named_sql_file_raises_migration_error(tmp_path: Path, name: str) -> None:
    write(tmp_path, "0001_ok.sql")
    write(tmp_path, name)

    with pytest.raises(MigrationError, match=r"migration files are named NNNN_name\.sql"):
        discover(tmp_path)


def test_duplicate_version_raises_migration_error(tmp_path: Path) -> None:
    write(tmp_path, "0001_first.sql")
    write(tmp_path, "0001_other.sql")

    with pytest.raises(MigrationError, match="duplicate migration versions"):
        discover(tmp_path)


def test_checksum_is_sha256_of_the_sql() -> None:
    sql = "CREATE TABLE t (id int);\n"

    assert Migration(1, "t", sql).checksum == hashlib.sha256(sql.encode()).hexdigest()


def test_checksum_changes_when_the_sql_is_edited() -> None:
    assert Migration(1, "t", "SELECT 1;").checksum != Migration(1, "t", "SELECT 2;").checksum


def test_checksum_ignores_version_and_name() -> None:
    assert Migration(1, "a", "SELECT 1;").checksum == Migration(2, "b", "SELECT 1;").checksum


def test_project_migrations_are_numbered_1_2_and_so_on_in_order() -> None:
    migrations = discover()

    assert migrations, f"no migrations found in {MIGRATIONS_DIR}"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


def test_project_migrations_have_stable_checksums() -> None:
    first = [(m.version, m.checksum) for m in discover()]
    second = [(m.version, m.checksum) for m in discover(MIGRATIONS_DIR)]

    assert first == second
    for migration in discover():
        path = MIGRATIONS_DIR / f"{migration.version:04d}_{migration.name}.sql"
        assert migration.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
