"""LoyalNest's pure domain: loyalty rules as plain functions and values.

Nothing here imports Kafka, MongoDB, Bytewax, Starlette or any other IO library: flows, sinks
and the API call in. Money is `decimal.Decimal`, points are `int`, time is aware UTC.
"""
