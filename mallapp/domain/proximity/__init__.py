"""Proximity: sightings in, presence per zone out.

``engine`` is the pure tracker (RSSI filter, distance, zone presence with hysteresis);
``locate`` the filters and the position estimate; ``ingest`` validates batches onto the Redis
stream; the worker (``mallapp worker``, :mod:`mallapp.processes.worker`) consumes the stream and applies the effects
in ``history`` (visits, proximity events) and ``mallapp.domain.checkin`` (automatic check-in);
``identity`` issues and resolves the members' rotating advertising identities.
"""
