"""Run the system's real processes against a private deployment on the shared servers.

Integration tests and benchmarks both need the same things: an isolated copy of the stores
(`deployment`), merchants that sign webhooks and hold tokens (`shops`), and the points flow and
the API started as production starts them, on free ports (`processes`).
"""
