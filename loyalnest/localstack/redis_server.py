"""Redis 7 from Debian's packages: a cache and dedup store, so no persistence."""

from __future__ import annotations

import redis

from loyalnest.localstack.process import run
from loyalnest.localstack.service import Service, ensure_apt, host_port


class Redis(Service):
    name = "redis"
    start_timeout = 20.0

    @property
    def url(self) -> str:
        return self.settings.redis_url

    def answers(self) -> bool:
        try:
            client = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=1)
            with client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def install(self) -> None:
        ensure_apt(["redis-server"], "redis-server")

    def start(self) -> None:
        host, port = host_port(self.settings.redis_url, 6379)
        run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                host,
                "--port",
                str(port),
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file.resolve()),
                "--dir",
                str(self.paths.data("redis").resolve()),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
