"""``python -m mallapp``: the same command line as ``mallapp``."""

from mallapp.cli import main

main()
