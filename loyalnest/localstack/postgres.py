"""PostgreSQL 15 from Debian's packages, as a private cluster under the data directory."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from loyalnest.localstack.process import StackError, run, stop_pid
from loyalnest.localstack.service import Service, ensure_apt, host_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Durability is traded for speed: this cluster is a development and test server.
DEV_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def registry_database(postgres_url: str) -> str:
    """The database the local schema registry keeps its schemas in."""
    return f"{urlsplit(postgres_url).path.lstrip('/')}_registry"


class Postgres(Service):
    name = "postgres"

    @property
    def url(self) -> str:
        parts = urlsplit(self.settings.postgres_url)
        return f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.settings.postgres_url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def install(self) -> None:
        ensure_apt(["postgresql-15"], str(PG_BIN / "initdb"))

    @property
    def _home(self) -> Path:
        return self.paths.data("postgres")

    @property
    def pid_file(self) -> Path:
        # PostgreSQL writes and removes its own pid file.
        return self._home / "data" / "postmaster.pid"

    @property
    def log_file(self) -> Path:
        return self._home / "server.log"

    def start(self) -> None:
        data = self._home / "data"
        if not (data / "PG_VERSION").exists():
            self._initdb(data)
        host, port = host_port(self.settings.postgres_url, 5432)
        sockets = self._home / "run"
        sockets.mkdir(exist_ok=True)
        self._chown(sockets)
        options = f"-p {port} -c listen_addresses={host} -k {sockets} {DEV_OPTIONS}"
        self._as_owner(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "start",
            ]
        )
        self._create_databases()

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        return stop_pid(self.pid_file, sig=signal.SIGINT)

    def _create_databases(self) -> None:
        """Create the application's database and the registry's, as the URL names them."""
        parts = urlsplit(self.settings.postgres_url)
        admin_url = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for db in (parts.path.lstrip("/"), registry_database(self.settings.postgres_url)):
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if exists.fetchone() is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    def _initdb(self, data: Path) -> None:
        parts = urlsplit(self.settings.postgres_url)
        if not parts.username or not parts.password:
            raise StackError("POSTGRES_URL needs a user and password for the local cluster")
        self._chown(self._home)
        pwfile = self._home / "pwfile"
        pwfile.write_text(parts.password)
        self._chown(pwfile)
        try:
            self._as_owner(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    parts.username,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    @staticmethod
    def _chown(path: Path) -> None:
        if os.geteuid() == 0:
            run(["chown", "postgres:postgres", str(path)])

    @staticmethod
    def _as_owner(cmd: list[str]) -> None:
        """PostgreSQL refuses to run as root; as root, run it as the `postgres` user."""
        run(["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd)
