"""The contract every local service follows, and the paths they share."""

from __future__ import annotations

import abc
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from loyalnest.localstack.process import StackError, alive, read_pid, run, stop_pid
from loyalnest.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "deploy" / "local"


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps data, logs, pid files and unpacked distributions."""

    root: Path

    def data(self, service: str) -> Path:
        path = self.root / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, service: str) -> Path:
        path = self.root / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{service}.log"

    def pid(self, service: str) -> Path:
        path = self.root / "run"
        path.mkdir(parents=True, exist_ok=True)
        return path / f"{service}.pid"

    def dist(self, name: str) -> Path:
        return self.root / "dist" / name


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """Host and port of a URL or of a bare `host:port`."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


class Service(abc.ABC):
    """One server of the local stack."""

    name: str
    start_timeout: float = 60.0

    def __init__(self, settings: Settings, paths: StackPaths) -> None:
        self.settings = settings
        self.paths = paths

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where clients reach the service (shown to the user)."""

    @abc.abstractmethod
    def answers(self) -> bool:
        """Whether a usable server answers at url, by a real protocol round trip."""

    @abc.abstractmethod
    def install(self) -> None:
        """Make the server's binaries available (idempotent, cached)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server in the background and record its pid file."""

    @property
    def pid_file(self) -> Path:
        return self.paths.pid(self.name)

    @property
    def log_file(self) -> Path:
        return self.paths.log(self.name)

    def owned_pid(self) -> int | None:
        """The pid of the server we started, if it is still running."""
        pid = read_pid(self.pid_file)
        return pid if pid is not None and alive(pid) else None

    def stop(self) -> bool:
        """Stop the server only if we started it (pid file), never by name."""
        return stop_pid(self.pid_file)


_apt_updated = False


def ensure_apt(packages: list[str], probe: str) -> None:
    """Install Debian packages unless `probe` (a command or path) is already there."""
    global _apt_updated
    if shutil.which(probe) or Path(probe).exists():
        return
    if os.geteuid() != 0:
        raise StackError(f"{probe} is missing: run `sudo apt-get install -y {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        run(["apt-get", "update", "-qq"], env=env)
        _apt_updated = True
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def ensure_java_and_maven() -> None:
    ensure_apt(["openjdk-17-jre-headless"], "java")
    ensure_apt(["maven"], "mvn")


def venv_bin(name: str) -> str:
    """A console script installed next to the running interpreter."""
    return str(Path(sys.executable).parent / name)
