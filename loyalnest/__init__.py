"""LoyalNest platform wiring: settings, CLI, local stack and bootstrap.

Business rules live in the pure `loyalty` package; this package only connects things.
"""
