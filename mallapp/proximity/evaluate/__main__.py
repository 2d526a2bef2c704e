"""``python -m mallapp.proximity.evaluate``: how well the product places people, on recordings.

``--labelled FILE`` scores the product's entrance rule on a labelled recording of tags inside, in the
vestibule and outside (:mod:`mallapp.domain.proximity.entrance_evaluate`); anything else scores the
position model on the BLE data sets or on any UJI-style zone given with ``--zone DIR``
(:mod:`mallapp.domain.proximity.evaluate`). ``--help`` after either shows its options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mallapp.domain.proximity import entrance_evaluate, evaluate


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--labelled" or a.startswith("--labelled=") for a in args):
        return entrance_evaluate.main(args)
    return evaluate.main(args)


if __name__ == "__main__":
    sys.exit(main())
