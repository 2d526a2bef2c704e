"""mallapp's benchmark: ``python -m benchmarks`` (``./dev bench``).

- :mod:`benchmarks.foundation` starts a durable PostgreSQL and a Redis, migrates, seeds members.
- :mod:`benchmarks.web` runs gunicorn and loads it with wrk (``mall.lua``).
- :mod:`benchmarks.ledger` runs purchase transactions in-process and pgbench on the same server.
"""
