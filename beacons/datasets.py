"""Public BLE RSSI data sets as iBeacon advertisements, so that a real RSSI trace plays through bleak.

The data live in ``<shared>/data/ble`` (see its README.md), where ``<shared>`` is ``$MALL_SHARED_DATA``
or ``../shared/data`` next to the project. Each beacon of a data set becomes an iBeacon with the
data set's UUID (below; ``uuid=`` picks another), major 1, minor = the beacon's id, measured power
-59 dBm (neither data set records it), at a fixed made-up static random address.

- ``uji_library``: one fingerprint per row of ``rss/lib_rss.csv`` (100 = not heard), one column per
  beacon of ``dep/lib.csv`` (ids 23-46); each advertisement at its recorded time (``rss/lib_tms.csv``,
  nanoseconds).
- ``uci435_ibeacon_wmu``: one scan per row of ``iBeacon_RSSI_Labeled.csv`` (-200 = not heard),
  beacons b3001..b3013 (minor 3001..3013), in time order (the file runs newest first), 1 s resolution.

Gaps between fingerprints or scans longer than ``max_gap_s`` (sessions days apart, or a clock that
restarted) are shortened to ``max_gap_s``.
"""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

from beacons.capture import Advert
from beacons.frames import APPLE_COMPANY_ID, build_ibeacon

__all__ = ["DATASETS", "DATASET_UUIDS", "MEASURED_POWER", "dataset_adverts", "shared_data_dir"]

# uuid5(NAMESPACE_URL, the data set's DOI URL): fixed, documented, and nobody's real beacons.
DATASET_UUIDS = {
    "uji_library": "64c61af5-812a-5975-9e67-48e32589e158",  # https://doi.org/10.5281/zenodo.1618692
    "uci435_ibeacon_wmu": "b7dadb85-bd8f-53ab-9c36-cdd9d0f28b21",  # https://doi.org/10.24432/C54G80
}
DATASETS = tuple(DATASET_UUIDS)
MEASURED_POWER = -59
MAJOR = 1
_ADDRESS_PREFIX = {"uji_library": "C0:DA:7A:01", "uci435_ibeacon_wmu": "C0:DA:7A:02"}


def shared_data_dir() -> Path:
    """``$MALL_SHARED_DATA``, else ``shared/data`` beside the project directory."""
    override = os.environ.get("MALL_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _address(dataset: str, beacon_id: int) -> str:
    return f"{_ADDRESS_PREFIX[dataset]}:{beacon_id >> 8:02X}:{beacon_id & 0xFF:02X}"


def dataset_adverts(dataset: str, *, data_dir: str | Path | None = None, uuid: str | None = None,
                    max_gap_s: float = 2.0) -> list[Advert]:
    """The advertisements of a data set, ``t`` from 0, in time order."""
    if dataset not in DATASET_UUIDS:
        raise ValueError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")
    base = Path(data_dir) if data_dir is not None else shared_data_dir()
    root = base / "ble" / dataset
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found (set MALL_SHARED_DATA to the directory holding ble/)")
    uuid = uuid or DATASET_UUIDS[dataset]
    if dataset == "uji_library":
        return _uji(root, uuid, max_gap_s)
    return _uci(root, uuid, max_gap_s)


def _frame_cache(dataset: str, uuid: str, ids: list[int]) -> dict[int, tuple[str, dict[int, bytes]]]:
    return {i: (_address(dataset, i), {APPLE_COMPANY_ID: build_ibeacon(uuid, MAJOR, i, MEASURED_POWER)})
            for i in ids}


def _uji(root: Path, uuid: str, max_gap_s: float) -> list[Advert]:
    with (root / "dep" / "lib.csv").open(newline="") as fh:
        ids = [int(row["id"]) for row in csv.DictReader(fh)]
    frames = _frame_cache("uji_library", uuid, ids)
    with (root / "rss" / "lib_rss.csv").open(newline="") as f_rss, \
            (root / "rss" / "lib_tms.csv").open(newline="") as f_tms:
        rows = list(zip(csv.reader(f_rss), csv.reader(f_tms), strict=True))
    adverts: list[Advert] = []
    t = 0.0
    last_ns: int | None = None
    for rss_row, tms_row in rows:
        heard = sorted((int(ns), ids[col], int(rss)) for col, (rss, ns) in enumerate(zip(rss_row, tms_row, strict=True))
                       if int(rss) != 100 and int(ns) != 0)
        for ns, beacon, rssi in heard:
            if last_ns is not None:
                gap = (ns - last_ns) / 1e9
                t += gap if 0 <= gap <= max_gap_s else max_gap_s
            last_ns = ns
            address, mfr = frames[beacon]
            adverts.append(Advert(t=t, address=address, rssi=rssi, manufacturer_data=mfr))
    return adverts


def _uci(root: Path, uuid: str, max_gap_s: float) -> list[Advert]:
    with (root / "iBeacon_RSSI_Labeled.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    columns = [(col, int(name[1:])) for col, name in enumerate(header) if name.startswith("b")]
    frames = _frame_cache("uci435_ibeacon_wmu", uuid, [beacon for _, beacon in columns])
    date_col = header.index("date")
    # The file runs newest first: reverse it, then a stable sort keeps same-second rows in order.
    scans = sorted(((datetime.strptime(row[date_col], "%m-%d-%Y %H:%M:%S"), row) for row in reversed(rows)),
                   key=lambda pair: pair[0])
    adverts: list[Advert] = []
    t = 0.0
    previous: datetime | None = None
    for when, row in scans:
        if previous is not None:
            t += min((when - previous).total_seconds(), max_gap_s)
        previous = when
        for col, beacon in columns:
            rssi = int(row[col])
            if rssi != -200:
                address, mfr = frames[beacon]
                adverts.append(Advert(t=t, address=address, rssi=rssi, manufacturer_data=mfr))
    return adverts
