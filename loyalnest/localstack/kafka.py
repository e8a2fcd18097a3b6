"""Apache Kafka 4.x in KRaft mode, run from Maven Central jars (no tarball, no Docker)."""

from __future__ import annotations

import hashlib
import shutil
from string import Template

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from loyalnest.localstack.process import run, spawn
from loyalnest.localstack.service import TEMPLATES, Service, ensure_java_and_maven, host_port

POM = TEMPLATES / "kafka" / "pom.xml"


class Kafka(Service):
    name = "kafka"

    @property
    def url(self) -> str:
        return self.settings.kafka_bootstrap_servers

    def answers(self) -> bool:
        admin = AdminClient(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "socket.timeout.ms": 2000,
                "log_level": 0,
            }
        )
        try:
            admin.list_topics(timeout=2)
            return True
        except KafkaException:
            return False

    @property
    def _libs(self) -> str:
        return str(self.paths.dist("kafka") / "libs")

    def install(self) -> None:
        """Copy the broker's runtime jars out of Maven (cached in ~/.m2) once per pom version."""
        dist = self.paths.dist("kafka")
        stamp = dist / "pom.sha256"
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text() == digest:
            return
        ensure_java_and_maven()
        shutil.rmtree(dist, ignore_errors=True)
        run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={self._libs}",
            ]
        )
        stamp.write_text(digest)

    def start(self) -> None:
        config = self._write_config()
        if not (self.paths.data("kafka") / "logs" / "meta.properties").exists():
            cluster_id = self._java("kafka.tools.StorageTool", "random-uuid").strip()
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", config)
        log4j = TEMPLATES / "kafka" / "log4j2.properties"
        spawn(
            [
                "java",
                "-Xms256m",
                "-Xmx512m",
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                f"{self._libs}/*",
                "kafka.Kafka",
                config,
            ],
            log=self.log_file,
            pid_file=self.pid_file,
        )

    def _write_config(self) -> str:
        host, port = host_port(self.settings.kafka_brokers[0], 9092)
        text = Template((TEMPLATES / "kafka" / "server.properties").read_text()).substitute(
            host=host,
            port=port,
            controller_port=port + 1,
            log_dirs=(self.paths.data("kafka") / "logs").resolve(),
            partitions=self.settings.kafka_topic_partitions,
        )
        path = self.paths.data("kafka") / "server.properties"
        path.write_text(text)
        return str(path.resolve())

    def _java(self, main: str, *args: str) -> str:
        return run(["java", "-cp", f"{self._libs}/*", main, *args])
