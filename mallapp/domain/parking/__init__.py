"""Parking: car parks, sessions, tariffs and member benefits (issue 15); so far the tariff engine."""
