"""Commands about presence and positioning that the mall runs by name (``python -m mallapp.proximity.evaluate``)."""
