"""Wayfinding: the mall's walkable graph (corridors, store doors, floor changes, car-park levels) and routes over it."""
