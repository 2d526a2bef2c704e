"""Chinese licence plates: read what a person typed or a camera sent, refuse what is not a plate.

A plate is stored normalised: upper case, half-width, no separators (``沪A·12345`` and ``沪a 12345``
are ``沪A12345``). Accepted (GA 36-2018):

- ordinary plates, 7 characters: a province (``沪``), the issuing office's letter, five letters or
  digits (no ``I`` or ``O``), the last one possibly ``挂`` (trailer), ``学`` (learner), ``警``
  (police), ``港`` or ``澳`` (cross-border);
- new-energy plates, 8 characters: a province, the office's letter, then either ``D``/``F`` (or
  another energy letter) and five characters of which the last four are digits (small vehicles,
  ``沪AD12345``), or five digits and ``D``/``F`` (large vehicles, ``沪A12345D``).

:func:`vehicle_type` reads the plan a plate is charged by from its shape: new-energy plates are
``new_energy``; others ``small`` unless the caller knows better (a bound plate's own type).
"""

from __future__ import annotations

import re
import unicodedata

from mallapp.errors import InvalidInput

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # no I or O
_ORDINARY = re.compile(rf"^[{PROVINCES}][{_LETTER}][{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学警港澳]$")
_NEW_ENERGY_SMALL = re.compile(rf"^[{PROVINCES}][{_LETTER}][DFABCEGHJK][{_LETTER}0-9][0-9]{{4}}$")
_NEW_ENERGY_LARGE = re.compile(rf"^[{PROVINCES}][{_LETTER}][0-9]{{5}}[DFABCEGHJK]$")
_SEPARATORS = re.compile(r"[\s·•．.\-_]")


def normalize(text: str) -> str:
    """Return the plate in its stored form, or raise ``parking.plate_invalid``."""
    plate = _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(text))).upper()
    if not (_ORDINARY.match(plate) or _NEW_ENERGY_SMALL.match(plate) or _NEW_ENERGY_LARGE.match(plate)):
        raise InvalidInput("Not a Chinese licence plate: a province, a letter and five characters "
                           "(six on a new-energy plate), e.g. 沪A12345 or 沪AD12345.",
                           code="parking.plate_invalid")
    return plate


def is_new_energy(plate: str) -> bool:
    return len(plate) == 8


def vehicle_type(plate: str) -> str:
    """The tariff plan a normalised plate is charged by when nothing else is known."""
    return "new_energy" if is_new_energy(plate) else "small"


def masked(plate: str) -> str:
    """The plate as a public page shows it: ``沪A1***5``."""
    return plate[:3] + "*" * (len(plate) - 4) + plate[-1]
