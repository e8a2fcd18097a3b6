"""Install, start, check and stop the local stack behind `make infra-up`.

Each service first asks whether its configured URL already answers; if so it is used as is and
nothing is started, which is how a developer points LoyalNest at an existing server.
"""
