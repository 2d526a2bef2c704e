"""``python -m mallapp.proximity.evaluate`` (its ``__main__``): the entrance rule or the position model, on recordings."""
