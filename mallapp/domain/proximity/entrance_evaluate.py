"""Does the entrance rule tell inside from outside? Labelled recordings through the product's own rule.

    python -m mallapp.domain.proximity.entrance_evaluate --labelled FILE [FILE ...] [--json]
        [--entrance-receivers a,b] [--measured-power -59]
    python -m mallapp.domain.proximity.entrance_evaluate --simulate OUT.csv --seed N [--tags 40,15,45]
    python -m mallapp.domain.proximity.entrance_evaluate --ble-stats ../shared/data/ble

Each run of a recording (one tag at one labelled place, :mod:`.entrance_recording`) is replayed in
time order through :class:`mallapp.domain.proximity.engine.Engine` as configured (settings,
``[beacons.checkin]`` and ``[beacons.signal]``), one batch per row. The recording gives receivers
no roles or positions: each becomes a gateway anchor in no zone, so an *interior* anchor, hearing a
phone that advertises ``--measured-power`` (the mini-program's -59 dBm) at 1 m; receivers named in
``--entrance-receivers`` are put in an entrance zone instead (they never confirm "inside"). A run
is "checked in" when the rule entered the mall at any time during it; inside means label inside
(vestibule and outside are not inside).

It prints, for the product's rule, the current any-sighting rule and each filter compared
(:data:`mallapp.domain.proximity.entrance.ENTRANCE_FILTERS`) under the same decision procedure: the
accuracy on "inside or not", and the shares of inside, vestibule and outside runs checked in; and
the figure of the procedure that chooses the filter and threshold by nested cross-validation (outer
folds by recording file when there are several, else five folds by tag; the choice is made on the
other folds only).
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mallapp.domain.proximity import entrance, entrance_recording, entrance_sim
from mallapp.domain.proximity.engine import MALL_ENTER, Engine, EngineConfig, MemberState
from mallapp.domain.venue import Anchor, Registry, ZoneInfo
from mallapp.settings import BeaconSettings, SettingsError, load_settings

ENTRANCE_ZONE = 1
THRESHOLDS = tuple(float(t) for t in range(-45, 1))  # the grid of interior_min_db the procedure chooses from
NEVER = float("-inf")


def registry_for(receivers: Sequence[str], entrance_receivers: Sequence[str] = ()) -> Registry:
    """The receivers as the mall's anchors: gateways (ids 1..n) in no zone, or in one entrance zone."""
    zones = {ENTRANCE_ZONE: ZoneInfo(ENTRANCE_ZONE, "entrance", "entrance", 1, None, None, None)}
    anchors = {k + 1: Anchor(k + 1, "gateway", ENTRANCE_ZONE if name in entrance_receivers else None, None, None, 1,
                             0.0, 0.0, None) for k, name in enumerate(receivers)}
    return Registry(1, zones, anchors, {})


def replay(engine: Engine, run: entrance_recording.Run, power: int) -> bool:
    """Whether the engine enters the mall during the run (one batch per row, the receivers' gateway channel)."""
    state = MemberState()
    for ms, heard in run.rows:
        t = ms / 1000.0
        fresh = 0
        for k, rssi in heard:
            if engine.observe(state, k + 1, rssi, t, power, phone=False):
                fresh = 1
        if any(tr.kind == MALL_ENTER for tr in engine.update(state, t, fresh)):
            return True
    return False


def level_series(run: entrance_recording.Run, cfg: EngineConfig, filt: entrance.Filter, power: int,
                 interior: Sequence[bool]) -> list[tuple[float, bool, float | None]]:
    """Per row: (time, fresh, interior level), with the engine's windows (the fast path of the grid search)."""
    windows: dict[int, tuple[list[float], list[int]]] = {}
    out = []
    for ms, heard in run.rows:
        t = ms / 1000.0
        for k, rssi in heard:
            times, rssis = windows.setdefault(k, ([], []))
            times.append(t)
            rssis.append(rssi)
        horizon = t - cfg.window_s
        for times, rssis in windows.values():
            cut = 0
            while cut < len(times) and times[cut] < horizon:
                cut += 1
            del times[:cut], rssis[:cut]
        level = entrance.interior_level(((rssis, float(power)) for k, (_, rssis) in windows.items()
                                         if interior[k] and rssis), filt, cfg.checkin_interior_min_readings)
        out.append((t, bool(heard), level))
    return out


def fires(series: list[tuple[float, bool, float | None]], cfg: EngineConfig, threshold: float | None) -> bool:
    """The engine's mall-entry decision over a level series; threshold None: any sighting confirms."""
    run: entrance.Run = (None, 0.0, 0)
    timeout = cfg.exit_timeout_s
    for t, fresh, level in series:
        if not fresh:
            if run[0] is not None and t - run[1] > timeout:
                run = (None, 0.0, 0)
            continue
        confirmed = threshold is None or entrance.confirms(level, threshold)
        run, entered = entrance.step(run, t, t, 1, confirmed, timeout, cfg.checkin_min_updates, cfg.checkin_min_span_s)
        if entered:
            return True
    return False


def highest_firing(series: list[tuple[float, bool, float | None]], cfg: EngineConfig) -> float:
    """The highest threshold of THRESHOLDS at which the run is checked in (firing is monotone in it), or NEVER."""
    lo, hi = 0, len(THRESHOLDS) - 1
    if not fires(series, cfg, THRESHOLDS[lo]):
        return NEVER
    while lo < hi:  # THRESHOLDS[lo] fires; find the last that does
        mid = (lo + hi + 1) // 2
        if fires(series, cfg, THRESHOLDS[mid]):
            lo = mid
        else:
            hi = mid - 1
    return THRESHOLDS[lo]


def score(labels: Sequence[str], checked: Sequence[bool]) -> dict[str, float | int]:
    """Accuracy on inside-or-not and the share of each label's runs checked in."""
    out: dict[str, float | int] = {"runs": len(labels)}
    right = sum((label == "inside") == c for label, c in zip(labels, checked, strict=True))
    out["inside_accuracy"] = right / len(labels) if labels else 0.0
    for name in entrance_recording.LABELS:
        hits = [c for label, c in zip(labels, checked, strict=True) if label == name]
        out[f"{name}_checked_in_share"] = sum(hits) / len(hits) if hits else 0.0
        out[f"{name}_runs"] = len(hits)
    return out


def _threshold(labels: Sequence[str], highest: Sequence[float], idx: Sequence[int]) -> tuple[int, int, float]:
    """The threshold of THRESHOLDS with the most runs of ``idx`` right (then the fewest outside checked in, then
    the middle of the tied ones): (runs right, -outside checked in, threshold)."""
    inside = sorted(highest[i] for i in idx if labels[i] == "inside")
    others = sorted(highest[i] for i in idx if labels[i] != "inside")
    outside = sorted(highest[i] for i in idx if labels[i] == "outside")
    scored = []
    for th in THRESHOLDS:  # a run is checked in at th when its highest firing threshold is >= th
        inside_in = len(inside) - bisect.bisect_left(inside, th)
        others_in = len(others) - bisect.bisect_left(others, th)
        outside_in = len(outside) - bisect.bisect_left(outside, th)
        scored.append((inside_in + len(others) - others_in, -outside_in, th))
    top = max((r, o) for r, o, _ in scored)
    tied = [th for r, o, th in scored if (r, o) == top]
    return top[0], top[1], tied[len(tied) // 2]


def _folds(groups: Sequence[str], idx: Sequence[int], by_group: bool) -> list[list[int]]:
    """Runs ``idx`` in folds: one per group (a recording), or five by tag."""
    keys = sorted({groups[i] for i in idx})
    parts = [[k] for k in keys] if by_group else [keys[i::5] for i in range(5)]
    return [[i for i in idx if groups[i] in set(part)] for part in parts if part]


def _choose(labels: Sequence[str], groups: Sequence[str], best: dict[str, list[float]], idx: Sequence[int],
            by_group: bool) -> tuple[str, float, dict[str, float]]:
    """The procedure on runs ``idx``: each filter's accuracy by cross-validation within ``idx`` (its threshold
    chosen on the other inner folds), the best filter, then its threshold on all of ``idx``."""
    inner = _folds(groups, idx, by_group)
    accuracy = {}
    for name, highest in best.items():
        right = 0
        for fold in inner:
            held = set(fold)
            _, _, th = _threshold(labels, highest, [i for i in idx if i not in held])
            right += sum((labels[i] == "inside") == (highest[i] >= th) for i in fold)
        accuracy[name] = right / max(1, sum(len(f) for f in inner))
    name = max(best, key=lambda n: accuracy[n])  # ties: the first in ENTRANCE_FILTERS' order
    return name, _threshold(labels, best[name], idx)[2], accuracy


def nested(labels: Sequence[str], groups: Sequence[str], best: dict[str, list[float]]) -> dict[str, object]:
    """Nested cross-validation of the procedure choosing (filter, threshold): outer folds by recording (or by
    tag), and within each outer training set inner folds the same way; each filter with its threshold chosen
    on the outer training set, too."""
    by_group = len({g.split("\x00")[0] for g in groups}) > 1
    everyone = list(range(len(labels)))
    procedure = [False] * len(labels)
    per_filter = {name: [False] * len(labels) for name in best}
    chosen = []
    for test in _folds(groups, everyone, by_group):
        held = set(test)
        train = [i for i in everyone if i not in held]
        if not train:
            continue
        name, th, _ = _choose(labels, groups, best, train, by_group)
        chosen.append({"filter": name, "interior_min_db": th, "held_out_runs": len(test)})
        for i in test:
            procedure[i] = best[name][i] >= th
        for fname, highest in best.items():
            fth = _threshold(labels, highest, train)[2]
            for i in test:
                per_filter[fname][i] = highest[i] >= fth
    name, th, inner = _choose(labels, groups, best, everyone, by_group)
    return {"outer_folds": "recording" if by_group else "tag", "folds": len(chosen), "chosen_per_fold": chosen,
            **score(labels, procedure),
            "per_filter": {f: score(labels, c) for f, c in per_filter.items()},
            "chosen_on_all": {"filter": name, "interior_min_db": th,
                              "cross_validated_accuracy": {f: round(a, 4) for f, a in inner.items()}}}


def evaluate(rec: entrance_recording.Recording, cfg: EngineConfig, power: int = entrance_sim.PHONE_POWER,
             entrance_receivers: Sequence[str] = ()) -> dict[str, object]:
    """Every figure of the report, as one JSON-able dict (see the module docstring)."""
    registry = registry_for(rec.receivers, entrance_receivers)
    runs = [r for r in rec.runs if r.rows]
    labels = [r.label for r in runs]
    groups = [f"{r.source}\x00{r.tag}" if len({x.source for x in runs}) == 1 else r.source for r in runs]
    product = [replay(Engine(cfg, registry), r, power) for r in runs]
    anyone = [replay(Engine(replace(cfg, checkin_require_interior=False), registry), r, power) for r in runs]
    interior = [name not in entrance_receivers for name in rec.receivers]
    filters: dict[str, dict[str, float | int]] = {}
    best: dict[str, list[float]] = {}
    for name, filt in entrance.ENTRANCE_FILTERS.items():
        series = [level_series(r, cfg, filt, power, interior) for r in runs]
        filters[name] = score(labels, [fires(s, cfg, cfg.checkin_interior_min_db) for s in series])
        best[name] = [highest_firing(s, cfg) for s in series]
    rule = {"require_interior": cfg.checkin_require_interior, "interior_filter": cfg.checkin_interior_filter,
            "interior_min_db": cfg.checkin_interior_min_db,
            "interior_min_readings": cfg.checkin_interior_min_readings, "min_updates": cfg.checkin_min_updates,
            "min_span_s": cfg.checkin_min_span_s, "window_s": cfg.window_s, "measured_power": power,
            "entrance_receivers": list(entrance_receivers)}
    return {**score(labels, product), "rule": rule, "any_sighting": score(labels, anyone),
            "filters_at_configured_threshold": filters, "nested": nested(labels, groups, best),
            "receivers": len(rec.receivers), "files": len({r.source for r in runs})}


def configured_beacons() -> BeaconSettings:
    """[beacons] as configured (files and MALL_* variables), also where the rest of the settings is incomplete."""
    try:
        return load_settings().beacons
    except SettingsError as exc:
        if "beacons" in str(exc):
            raise
        # An evaluation needs no mall: stand in for the keys a deployment must set, keep [beacons] as it is.
        stand_ins = {"wechat": {"appid": "-"}, "mall": {"name": "-", "latitude": 0.0, "longitude": 0.0}}
        return load_settings(overrides=stand_ins).beacons


def _line(name: str, s: dict) -> str:
    return (f"{name:<34} inside-or-not accuracy {s['inside_accuracy']:.3f}   checked in: outside "
            f"{s['outside_checked_in_share']:.3f}  vestibule {s['vestibule_checked_in_share']:.3f}  "
            f"inside {s['inside_checked_in_share']:.3f}")


def report(result: dict) -> str:
    rule = result["rule"]
    lines = [f"{result['runs']} runs ({result['inside_runs']} inside, {result['vestibule_runs']} vestibule, "
             f"{result['outside_runs']} outside) from {result['files']} file(s), {result['receivers']} receivers",
             f"the product's rule as configured: {rule}", _line("product rule", result),
             _line("any sighting (the rule before)", result["any_sighting"]),
             f"filters under the same procedure, at interior_min_db {rule['interior_min_db']:g}:"]
    lines += [_line(f"  {name}", s) for name, s in result["filters_at_configured_threshold"].items()]
    n = result["nested"]
    lines.append(f"nested cross-validation ({n['folds']} outer folds by {n['outer_folds']}; filter and threshold "
                 f"chosen on the other folds):")
    lines.append(_line("  the procedure", n))
    lines += [_line(f"  {name} (threshold chosen)", s) for name, s in n["per_filter"].items()]
    lines.append(f"  chosen per fold: {[(c['filter'], c['interior_min_db']) for c in n['chosen_per_fold']]}")
    lines.append(f"  chosen on all runs: {n['chosen_on_all']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mallapp.proximity.evaluate --labelled",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--labelled", nargs="+", metavar="FILE", help="labelled recording(s) (docs/presence.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--entrance-receivers", default="", help="receivers to treat as an entrance zone's (comma-separated)")
    p.add_argument("--measured-power", type=int, default=entrance_sim.PHONE_POWER,
                   help="the tags' advertised 1 m power (default: the mini-program's, %(default)s dBm)")
    p.add_argument("--simulate", metavar="OUT.csv", help="write a simulated recording instead")
    p.add_argument("--seed", type=int, default=1, help="the simulated building (with --simulate)")
    p.add_argument("--tags", default="40,15,45", help="simulated tags inside,vestibule,outside")
    p.add_argument("--ble-stats", metavar="DIR", help="print the RSSI statistics of the recorded BLE data sets in DIR "
                   "(../shared/data/ble) that set the simulator's noise, and stop")
    args = p.parse_args(argv)
    if args.ble_stats:
        try:
            stats = entrance_sim.ble_statistics(Path(args.ble_stats))
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(stats, indent=1) if args.json else
              "\n".join(f"{k:<28} {v:8.2f}" for k, v in stats.items()))
        return 0
    if args.simulate:
        try:
            counts = dict(zip(entrance_recording.LABELS, (int(x) for x in args.tags.split(",")), strict=True))
        except ValueError:
            p.error("--tags takes three counts: inside,vestibule,outside")
        b, rows = entrance_sim.simulate(args.seed, counts)
        n = entrance_recording.write(args.simulate, [r[0] for r in b.receivers], rows)
        print(f"{args.simulate}: {n} rows, {sum(counts.values())} tags, building {args.seed} "
              f"({b.width:.0f} x {b.depth:.0f} m, {len(b.receivers)} receivers)", file=sys.stderr)
        return 0
    if not args.labelled:
        p.error("give --labelled FILE (or --simulate OUT.csv)")
    try:
        rec = entrance_recording.load(args.labelled)
    except entrance_recording.RecordingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rec.runs:
        print("error: the recording has no rows", file=sys.stderr)
        return 2
    cfg = EngineConfig.from_settings(configured_beacons())
    entrances = [r for r in args.entrance_receivers.split(",") if r]
    unknown = [r for r in entrances if r not in rec.receivers]
    if unknown:
        print(f"error: --entrance-receivers names receivers the recording does not have: {unknown}", file=sys.stderr)
        return 2
    result = evaluate(rec, cfg, args.measured_power, entrances)
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
