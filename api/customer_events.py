"""`customer.created` and `customer.updated` from the API: what Core's customers table gained
or changed (connectors/customer_records.customer_event), in Avro, through the API's producer.

As best effort as the personal-data writes they follow: an event the registry or Kafka could
not take is counted and logged, never raised (the webhook that brought the data has long been
answered). The Avro encoders are looked up in the registry at first use, not at startup, so
the API starts and serves without a registry.
"""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from api.producer import AsyncProducer, ProduceError
from connectors.avro import AvroEncoder, Encoder
from connectors.customer_records import CustomerRow, customer_event
from loyalnest.settings import Settings
from loyalnest.topics import CUSTOMER_CREATED, CUSTOMER_UPDATED

log = logging.getLogger("loyalnest.api.customer_events")

NOT_SENT = Counter(
    "loyalnest_customer_events_errors_total",
    "customer.created / customer.updated events not sent (registry or Kafka away)",
)


class CustomerEvents:
    def __init__(self, settings: Settings, producer: AsyncProducer) -> None:
        self._settings = settings
        self._producer = producer
        self._encoders: dict[str, Encoder] | None = None

    async def announce(self, rows: list[CustomerRow]) -> None:
        try:
            encoders = await self._registered()
        except Exception as exc:  # the registry's client raises several kinds
            NOT_SENT.inc(len(rows))
            log.warning("%d customer events not sent: no schemas: %s", len(rows), exc)
            return
        sent = await asyncio.gather(*(self._send(encoders, row) for row in rows))
        if not all(sent):
            log.warning("%d customer events not sent", sent.count(False))

    async def _send(self, encoders: dict[str, Encoder], row: CustomerRow) -> bool:
        contract, record = customer_event(row)
        try:
            await self._producer.send(
                self._settings.topic(contract),
                key=f"{row.merchant_id}:{row.customer_id}".encode(),
                value=encoders[contract](record),
                headers=[],
            )
        except ProduceError:
            NOT_SENT.inc()
            return False
        return True

    async def _registered(self) -> dict[str, Encoder]:
        if self._encoders is None:
            self._encoders = await asyncio.to_thread(self._look_up)
        return self._encoders

    def _look_up(self) -> dict[str, Encoder]:
        with SchemaRegistryClient({"url": self._settings.schema_registry_url}) as registry:
            return {
                contract: AvroEncoder.registered(registry, contract, self._settings.topic(contract))
                for contract in (CUSTOMER_CREATED, CUSTOMER_UPDATED)
            }
