"""A MongoDB-wire server: SecantusDB from PyPI (no mongod can be installed here)."""

from __future__ import annotations

import pymongo
import pymongo.errors

from loyalnest.localstack.process import spawn
from loyalnest.localstack.service import Service, host_port, venv_bin


class Mongo(Service):
    name = "mongo"

    @property
    def url(self) -> str:
        return self.settings.mongo_url

    def answers(self) -> bool:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.settings.mongo_url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def install(self) -> None:
        """SecantusDB is a Python dependency, already in the project's environment."""

    def start(self) -> None:
        host, port = host_port(self.settings.mongo_url, 27017)
        storage = self.paths.data("mongo").resolve()
        spawn(
            [
                venv_bin("secantusd-py"),
                "--host",
                host,
                "--port",
                str(port),
                "--storage-path",
                str(storage),
                "--log-level",
                "WARNING",
                # A standalone server keeps no oplog: nothing here reads change streams or
                # opens transactions, and keeping the oplog cost the store a third more CPU
                # per customer in the expiry sweep (bench/sweep.py).
                "--standalone",
            ],
            log=self.log_file,
            pid_file=self.pid_file,
        )
