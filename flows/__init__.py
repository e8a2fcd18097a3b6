"""Bytewax dataflows. Each module wires one flow: `build(...)` takes its source and sinks (so
tests run it on TestingSource), and `flow()` plugs in the real connectors from settings."""
