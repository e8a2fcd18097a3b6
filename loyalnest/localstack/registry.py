"""A Confluent-compatible schema registry: Apicurio Registry 3 from Maven Central."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import httpx

from loyalnest.localstack.postgres import registry_database
from loyalnest.localstack.process import run, spawn
from loyalnest.localstack.service import TEMPLATES, Service, ensure_java_and_maven, host_port

APICURIO_VERSION = "3.0.9"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"


class SchemaRegistry(Service):
    name = "registry"
    start_timeout = 90.0

    @property
    def url(self) -> str:
        return self.settings.schema_registry_url

    def answers(self) -> bool:
        try:
            response = httpx.get(f"{self.settings.schema_registry_url}/subjects", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    @property
    def _jar(self) -> Path:
        dist = self.paths.dist(f"apicurio-{APICURIO_VERSION}")
        return dist / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"

    def install(self) -> None:
        dist = self.paths.dist(f"apicurio-{APICURIO_VERSION}")
        if self._jar.exists():
            return
        ensure_java_and_maven()
        download = self.paths.dist("download")
        run(
            [
                "mvn",
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={ARTIFACT}",
                f"-DoutputDirectory={download}",
            ]
        )
        staging = dist.with_name(dist.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        run(
            [
                "tar",
                "-xzf",
                str(download / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"),
                "-C",
                str(staging),
            ]
        )
        staging.rename(dist)  # only a complete unpack ever counts as installed
        shutil.rmtree(download)

    def start(self) -> None:
        home = self.paths.data("registry")
        (home / "config").mkdir(exist_ok=True)
        (home / "config" / "application.properties").write_text(self._config())
        # Quarkus reads config/application.properties relative to its working directory.
        spawn(
            ["java", "-Xms128m", "-Xmx384m", "-jar", str(self._jar)],
            log=self.log_file,
            pid_file=self.pid_file,
            cwd=home,
        )

    def _config(self) -> str:
        host, port = host_port(self.settings.schema_registry_url, 8081)
        pg = urlsplit(self.settings.postgres_url)
        jdbc = (
            f"jdbc:postgresql://{pg.hostname}:{pg.port or 5432}/"
            f"{registry_database(self.settings.postgres_url)}"
        )
        return Template((TEMPLATES / "registry" / "application.properties").read_text()).substitute(
            host=host,
            port=port,
            jdbc_url=jdbc,
            user=pg.username or "",
            password=pg.password or "",
            base_path=urlsplit(self.settings.schema_registry_url).path,
        )
