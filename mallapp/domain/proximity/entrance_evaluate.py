"""Does the entrance rule tell inside from outside? Labelled recordings through the product's own rule.

    python -m mallapp.domain.proximity.entrance_evaluate --labelled FILE [FILE ...] [--json]
        [--entrance-receivers a,b] [--measured-power -59]
    python -m mallapp.domain.proximity.entrance_evaluate --simulate OUT.csv --seed N [--tags 40,15,45]

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
import json
import sys
from collections.abc import Sequence
from dataclasses import replace

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


def _choose(labels: Sequence[str], best: dict[str, list[float]], idx: Sequence[int]) -> tuple[str, float]:
    """The filter and threshold with the best accuracy on runs ``idx`` (then the fewest outside checked in,
    then the middle of the tied thresholds)."""
    found: list[tuple[float, float, str, float]] = []
    for name, highest in best.items():
        scored = []
        for th in THRESHOLDS:
            right = sum((labels[i] == "inside") == (highest[i] >= th) for i in idx)
            outside = sum(labels[i] == "outside" and highest[i] >= th for i in idx)
            scored.append((right, -outside, th))
        top = max((r, o) for r, o, _ in scored)
        tied = [th for r, o, th in scored if (r, o) == top]
        found.append((top[0], top[1], name, tied[len(tied) // 2]))
    right, outside, name, th = max(found, key=lambda f: (f[0], f[1]))
    return name, th


def nested(labels: Sequence[str], groups: Sequence[str], best: dict[str, list[float]]) -> dict[str, object]:
    """Nested cross-validation of the choice of (filter, threshold): outer folds by group; per filter too."""
    keys = sorted(set(groups))
    by_file = len({g.split("\x00")[0] for g in groups}) > 1
    folds = [[k] for k in keys] if by_file else [keys[i::5] for i in range(5)]
    folds = [f for f in folds if f]
    procedure = [False] * len(labels)
    per_filter = {name: [False] * len(labels) for name in best}
    chosen = []
    for fold in folds:
        held = set(fold)
        train = [i for i, g in enumerate(groups) if g not in held]
        test = [i for i, g in enumerate(groups) if g in held]
        if not train or not test:
            continue
        name, th = _choose(labels, best, train)
        chosen.append({"filter": name, "interior_min_db": th, "held_out_runs": len(test)})
        for i in test:
            procedure[i] = best[name][i] >= th
        for fname in best:
            _, fth = _choose(labels, {fname: best[fname]}, train)
            for i in test:
                per_filter[fname][i] = best[fname][i] >= fth
    name, th = _choose(labels, best, range(len(labels)))
    return {"outer_folds": "recording" if by_file else "tag", "folds": len(chosen), "chosen_per_fold": chosen,
            **score(labels, procedure),
            "per_filter": {f: score(labels, c) for f, c in per_filter.items()},
            "chosen_on_all": {"filter": name, "interior_min_db": th}}


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
    args = p.parse_args(argv)
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
