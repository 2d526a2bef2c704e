"""Simulated labelled recordings: tags inside a building, in its vestibule and outside its door.

Each seed is a different building (:func:`building`): its size, door, vestibule depth, receiver count
and placement, path-loss exponent, wall and door losses, hardware offsets and noise are drawn from the
ranges below, so that a rule tuned on some buildings can be scored on others. A reading is

    rssi = P + tag offset + receiver offset - 10 n log10(d) - walls - body + shadowing + fading

with ``P`` the phone's advertised 1 m power (-59 dBm, the mini-program's), walls the facade, door
and vestibule partitions the straight path crosses, body the wearer's shadow (0 facing the receiver,
``body_db`` with the back to it), shadowing log-normal and fixed per tag and receiver, fading fresh
per reading (with a heavy tail). A reading below the receiver's sensitivity is not heard, and any
reading is missed with a probability that grows near it. An outside or vestibule tag sometimes
gets a strong multipath reading (through the open door, off glass): the level of the path without
walls or body, give or take a few dB. Where the parameters come from: docs/presence.md ("The
simulator").
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

PHONE_POWER = -59  # what the mini-program advertises as its 1 m power (mallapp.devtools.walks)
TICK_MS = 1000  # one reading time a second per tag


@dataclass(frozen=True)
class Building:
    seed: int
    width: float  # metres along the facade (x); the facade is y = 0, the inside y > 0
    depth: float
    door_x: float  # centre of the doors
    door_w: float  # width of the door opening (outer and inner doors)
    vest_w: float  # the vestibule: x within door_x +- vest_w / 2, 0 <= y <= vest_d
    vest_d: float
    receivers: tuple[tuple[str, float, float, float], ...]  # (name, x, y, hardware offset dB)
    exponent: float
    facade_db: float
    door_db: float
    partition_db: float
    shadow_sd: float
    fading_sd: float
    body_db: float
    tag_offset_sd: float
    sensitivity: float
    miss_base: float
    multipath_p: float


def building(seed: int) -> Building:
    """The building of a seed (see the module docstring and docs/presence.md for the ranges)."""
    rng = random.Random(f"building-{seed}")
    width, depth = rng.uniform(20, 60), rng.uniform(15, 40)
    door_x = rng.uniform(0.3, 0.7) * width
    door_w = rng.uniform(1.8, 4.0)
    vest_w, vest_d = door_w + rng.uniform(1.0, 3.0), rng.uniform(2.0, 4.5)
    receiver_sd = rng.uniform(1.0, 4.0)
    count = rng.randint(4, 12)
    near = rng.randint(1, 2)  # receivers just inside the inner door
    receivers = []
    for k in range(count):
        if k < near:
            x = door_x + rng.uniform(-4, 4)
            y = vest_d + rng.uniform(1.5, 6.0)
        else:
            x, y = rng.uniform(1, width - 1), rng.uniform(vest_d + 2, depth - 1)
        receivers.append((f"r{k}", round(x, 2), round(y, 2), round(rng.gauss(0, receiver_sd), 1)))
    return Building(seed, width, depth, door_x, door_w, vest_w, vest_d, tuple(receivers),
                    exponent=rng.uniform(2.2, 3.2), facade_db=rng.uniform(5, 15), door_db=rng.uniform(1.5, 5),
                    partition_db=rng.uniform(3, 8), shadow_sd=rng.uniform(3, 6), fading_sd=rng.uniform(1.5, 3.0),
                    body_db=rng.uniform(3, 9), tag_offset_sd=rng.uniform(3, 8), sensitivity=rng.uniform(-100, -94),
                    miss_base=rng.uniform(0.15, 0.4), multipath_p=rng.uniform(0.02, 0.1))


def walls(b: Building, x: float, y: float, rx: float, ry: float) -> float:
    """The loss of the walls, doors and vestibule partitions on the straight path from (x, y) to a receiver."""
    loss = 0.0
    half_door, half_vest = b.door_w / 2, b.vest_w / 2
    in_vest = abs(x - b.door_x) <= half_vest and 0 <= y <= b.vest_d
    if y < 0:  # outside: through the facade, the outer door, or into the vestibule and out of it
        t = -y / (ry - y)
        cx = x + t * (rx - x)
        if abs(cx - b.door_x) <= half_door:
            loss += b.door_db
        else:
            loss += b.facade_db
        in_vest = abs(cx - b.door_x) <= half_vest
        y = 0.0
        x = cx
    if in_vest:  # leave the vestibule: through the inner door, or a partition
        t = (b.vest_d - y) / (ry - y) if ry != y else 2.0
        cx = x + t * (rx - x)
        if 0 <= t <= 1 and abs(cx - b.door_x) <= half_vest:
            loss += b.door_db if abs(cx - b.door_x) <= half_door else b.partition_db
        else:
            loss += b.partition_db
    return loss


def _place(b: Building, label: str, kind: str, rng: random.Random) -> tuple[float, float]:
    if label == "inside":
        if kind == "near_door":  # just inside the inner door: the hardest inside tags
            return b.door_x + rng.uniform(-5, 5), b.vest_d + rng.uniform(0.5, 6.0)
        return rng.uniform(0.5, b.width - 0.5), rng.uniform(b.vest_d + 0.5, b.depth - 0.5)
    if label == "vestibule":
        return b.door_x + rng.uniform(-b.vest_w / 2 + 0.3, b.vest_w / 2 - 0.3), rng.uniform(0.3, b.vest_d - 0.3)
    if kind == "waiting":  # outside, at the door
        return b.door_x + rng.uniform(-3, 3), -rng.uniform(0.5, 4.0)
    return b.door_x + rng.uniform(-25, -15), -rng.uniform(1.0, 6.0)  # a passer-by's start


def simulate(seed: int, tags: dict[str, int] | None = None, start_ms: int = 1_700_000_000_000
             ) -> tuple[Building, list[tuple[str, str, int, list[int | None]]]]:
    """A recording of the seed's building: ``tags`` per label (default 40 inside, 15 vestibule, 45 outside).

    Half the inside tags stand within a few metres of the inner door; half the outside tags wait at the
    door, half walk past along the facade. Returns the building and rows (tag, label, ms, rssi or None).
    """
    tags = tags or {"inside": 40, "vestibule": 15, "outside": 45}
    b = building(seed)
    rng = random.Random(f"tags-{seed}")
    rows: list[tuple[str, str, int, list[int | None]]] = []
    n = 0
    for label in ("inside", "vestibule", "outside"):
        for k in range(tags.get(label, 0)):
            n += 1
            kind = {"inside": ("near_door", "anywhere"), "vestibule": ("standing",),
                    "outside": ("waiting", "passing")}[label][k % (1 if label == "vestibule" else 2)]
            rows += _tag_rows(b, f"s{seed}t{n:03d}", label, kind, rng, start_ms + n * 200_000)
    return b, rows


def _tag_rows(b: Building, tag: str, label: str, kind: str, rng: random.Random, t0: int
              ) -> list[tuple[str, str, int, list[int | None]]]:
    x, y = _place(b, label, kind, rng)
    heading = rng.uniform(0, 2 * math.pi)
    offset = rng.gauss(0, b.tag_offset_sd)
    shadow = [rng.gauss(0, b.shadow_sd) for _ in b.receivers]
    if kind == "passing":
        speed = rng.uniform(1.0, 1.5)
        seconds = int((abs(x - b.door_x) * 2) / speed)
        heading = 0.0  # walking along the facade, +x
    else:
        speed = 0.0
        seconds = rng.randint(30, 120)
    out = []
    for s in range(seconds):
        px = x + speed * s
        py = y
        if speed == 0.0:  # standing: fidgeting, and turning now and then
            px += rng.uniform(-0.3, 0.3)
            py += rng.uniform(-0.3, 0.3)
            if rng.random() < 0.05:
                heading = rng.uniform(0, 2 * math.pi)
        values: list[int | None] = []
        for (_, rx, ry, rx_offset), shade in zip(b.receivers, shadow, strict=True):
            d = max(math.hypot(rx - px, ry - py), 0.5)
            free = PHONE_POWER + offset + rx_offset - 10 * b.exponent * math.log10(d)
            bearing = math.atan2(ry - py, rx - px)
            body = b.body_db * (1 - math.cos(bearing - heading)) / 2
            fading = rng.gauss(0, b.fading_sd)
            if rng.random() < 0.02:  # the heavy tail of the fading (UJI: 1% of readings 7-8 dB off)
                fading += rng.choice((-1, 1)) * rng.uniform(5, 10)
            rssi = free - walls(b, px, py, rx, ry) - body + shade + fading
            if label != "inside" and rng.random() < b.multipath_p:
                rssi = free + shade + rng.uniform(-2, 6)  # a strong path around the walls and the body
            miss = b.miss_base + 0.35 * min(1.0, max(0.0, (b.sensitivity + 10 - rssi) / 10))
            values.append(None if rssi < b.sensitivity or rng.random() < miss else max(-127, min(-1, round(rssi))))
        out.append((tag, label, t0 + s * TICK_MS + rng.randrange(0, 200), values))
    return out


# --- where the parameters come from: the recorded BLE data sets --------------------------------------------

def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ble_statistics(ble_dir: Path) -> dict[str, float]:
    """RSSI statistics of the UJI library and UCI WMU recordings (``<shared data>/ble``) that set the simulator's
    noise: the spread of a person standing still, its tail, missed readings, the log-distance fit and the phones'
    offsets (docs/presence.md, "The simulator")."""
    uji = ble_dir / "uji_library"
    rss = [[int(v) for v in row] for row in csv.reader((uji / "rss" / "lib_rss.csv").open())]
    ids = [int(row[0]) for row in csv.reader((uji / "rss" / "lib_ids.csv").open())]
    crd = [(float(r[0]), float(r[1])) for r in csv.reader((uji / "rss" / "lib_crd.csv").open())]
    dep = [(float(r[1]), float(r[2])) for r in list(csv.reader((uji / "dep" / "lib.csv").open()))[1:]]
    groups: dict[tuple[int, int, int], list[list[int]]] = {}
    for row, ident in zip(rss, ids, strict=True):  # one person standing at one point with one phone
        groups.setdefault((ident // 10**7, ident // 10**5 % 10, ident // 100 % 1000), []).append(row)
    sds, misses, deviations = [], [], []
    for rows in groups.values():
        for b in range(len(dep)):
            heard = [r[b] for r in rows if r[b] != 100]
            if len(heard) >= 2 and len(rows) >= 5:
                sds.append(statistics.pstdev(heard))
                misses.append(1 - len(heard) / len(rows))
                mid = statistics.median(heard)
                deviations += [v - mid for v in heard]
    xs, ys, phones = [], [], []
    for row, (x, y), ident in zip(rss, crd, ids, strict=True):
        for b, (bx, by) in enumerate(dep):
            if row[b] != 100:
                xs.append(math.log10(max(math.hypot(x - bx, y - by), 0.5)))
                ys.append(row[b])
                phones.append(ident // 10**7)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    residuals = [y - my - slope * (x - mx) for x, y in zip(xs, ys, strict=True)]
    by_phone: dict[int, list[float]] = {}
    for phone, r in zip(phones, residuals, strict=True):
        by_phone.setdefault(phone, []).append(r)
    offsets = [statistics.fmean(v) for v in by_phone.values()]
    uci: dict[str, list[list[int]]] = {}
    with (ble_dir / "uci435_ibeacon_wmu" / "iBeacon_RSSI_Labeled.csv").open() as fh:
        for rec in csv.DictReader(fh):
            uci.setdefault(rec["location"], []).append([int(v) for k, v in rec.items() if k.startswith("b30")])
    uci_sds = [statistics.pstdev(heard) for rows in uci.values() for b in range(13)
               if len(heard := [r[b] for r in rows if r[b] != -200]) >= 3]
    return {"uji_still_sd_median_db": statistics.median(sds), "uji_still_sd_p90_db": _quantile(sds, 0.9),
            "uji_deviation_p01_db": _quantile(deviations, 0.01), "uji_deviation_p99_db": _quantile(deviations, 0.99),
            "uji_missed_share_mean": statistics.fmean(misses), "uji_path_loss_exponent": -slope / 10,
            "uji_level_at_1m_dbm": my - slope * mx, "uji_residual_sd_db": statistics.pstdev(residuals),
            "uji_phone_offset_spread_db": max(offsets) - min(offsets),
            "uci_still_sd_median_db": statistics.median(uci_sds), "uci_still_sd_p90_db": _quantile(uci_sds, 0.9)}
