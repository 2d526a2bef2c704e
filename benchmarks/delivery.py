"""``python -m benchmarks.delivery``: proximity offers decided and delivered, and the live channel under load.

    python -m benchmarks.delivery [--members 20000] [--consumers 2] [--clients 5000] [--rate 1000] [--seconds 10]

On its own durable PostgreSQL and Redis (:mod:`benchmarks.foundation`), with 20 stores of 3 live
deals each and quiet hours switched off, it prints two comparisons measured in the same run:

1. **Decisions**: dwell events (3 per member, at 3 different stores, so each should bring one
   offer) are appended to ``proximity:events`` and ``--consumers`` processes of
   ``mallapp offers`` decide and record them (inbox, and the subscribe attempt: these
   members hold no quota). Decisions per second from the first event to the last one
   acknowledged, against the **baseline** of recording the same number of messages with
   ``notifications.record_many`` and no decision, from as many processes.
2. **Live**: ``--clients`` WebSocket clients (members whose mini-program is open) hold
   connections to ``mallapp live``; events for them arrive at ``--rate`` a second and
   the consumers deliver the offers live. Latency from the notification's record time to the
   client (and from the event itself), p50 / p99, against the **baseline** of a bare ``PUBLISH``
   to the same clients at the same rate, straight through the live server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from benchmarks.foundation import Stack, seed, stack, stop_all
from mallapp.adapters import live
from mallapp.domain import deals, merchants, notifications, venue_admin
from mallapp.domain.notifications import Delivery, Message, Notification, Text
from mallapp.domain.offers import GROUP
from mallapp.domain.proximity.effects import EVENTS_STREAM
from mallapp.runtime import build_runtime
from mallapp.settings import load_settings

DECISIONS_GOAL = 5000.0
LIVE_P99_GOAL_MS = 1000.0
STORES, DEALS_PER_STORE = 20, 3


def log(line: str) -> None:
    print(line, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    if not ordered:
        return float("nan"), float("nan")
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --- the mall ----------------------------------------------------------------------------------------

def seed_deals(st: Stack) -> list[int]:
    """Twenty stores, each with three live deals for everyone; return the store ids."""
    rt = st.runtime()
    try:
        now = rt.now()
        with rt.sessions.begin() as s:
            merchant, _ = merchants.create(s, "Benchmark Arcade", now)
            stores = []
            for i in range(STORES):
                store = venue_admin.create_store(s, name=f"Store {i}", floor=1, x=float(i), y=0.0,
                                                 merchant_id=merchant.id, now=now)
                stores.append(store.id)
                for j in range(DEALS_PER_STORE):
                    deal = deals.create(s, merchant.id, title=f"Store {i} deal {j}", store_id=store.id,
                                        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=7),
                                        quota=10_000_000, per_member_limit=1, store_ids=[store.id],
                                        benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
                    deal.status = "live"
        return stores
    finally:
        rt.close()


def events_for(members: list[int], stores: list[int], per_member: int, rng: random.Random) -> list[tuple[int, int]]:
    """(member, store) dwell events: each member at ``per_member`` different stores, interleaved."""
    visits = {m: rng.sample(stores, per_member) for m in members}
    return [(m, visits[m][k]) for k in range(per_member) for m in members]


def append_events(redis, events: list[tuple[int, int]], first_id: int) -> tuple[dict[tuple[int, int], float], bytes]:
    """Append dwell events as the proximity worker publishes them: their times by (member, store), the last id."""
    at: dict[tuple[int, int], float] = {}
    ids: list[bytes] = []
    pipe = redis.pipeline(transaction=False)
    for n, (member_id, store_id) in enumerate(events):
        ts = time.time()
        at[member_id, store_id] = ts
        pipe.xadd(EVENTS_STREAM, {"id": first_id + n, "member_id": member_id, "zone_id": store_id,
                                  "store_id": store_id, "sale_item_id": "", "at": repr(ts)})
        if len(pipe) >= 1000:
            ids.extend(pipe.execute())
    ids.extend(pipe.execute())
    return at, ids[-1]


def _group_done(redis, last_id: bytes) -> bool:
    """Whether the offers group has read everything up to ``last_id`` and acknowledged it all."""
    for group in redis.xinfo_groups(EVENTS_STREAM):
        if group["name"] in (GROUP, GROUP.encode()):
            return group["pending"] == 0 and group["last-delivered-id"] == last_id
    return False


def start_consumers(st: Stack, n: int, count: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-m", "mallapp", "offers", "--consumer", f"bench-{i}",
                               "--count", str(count), "--block-ms", "50"], env=st.process_env())
             for i in range(n)]
    redis = st.runtime().redis
    try:
        # Warm up: the clock starts with work, not imports. A malformed entry per consumer is
        # skipped and acknowledged; when they all are, the consumers are reading.
        time.sleep(1.0)
        last = b""
        deadline = time.monotonic() + 60
        for _ in range(4 * n):
            last = redis.xadd(EVENTS_STREAM, {"warm-up": "1"})
        while not _group_done(redis, last):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the offers consumers did not start")
            time.sleep(0.1)
        time.sleep(1.0)
    except BaseException:
        stop_all(procs)
        raise
    return procs


def _count(st: Stack, *where) -> int:
    rt = st.runtime()
    try:
        with rt.sessions.begin() as s:
            return s.scalar(select(func.count()).select_from(Notification).where(*where)) or 0
    finally:
        rt.close()


# --- 1. decisions ------------------------------------------------------------------------------------

def run_decisions(st: Stack, members: list[int], stores: list[int], consumers: int, count: int) -> tuple[float, int]:
    """Offers decided and recorded per second; and how many were recorded."""
    events = events_for(members, stores, 3, random.Random(1))
    redis = st.runtime().redis
    procs = start_consumers(st, consumers, count)
    try:
        started = time.perf_counter()
        _, last = append_events(redis, events, first_id=1)
        while not _group_done(redis, last):
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("an offers consumer died")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        stop_all(procs)
    return len(events) / elapsed, _count(st, Notification.key.startswith("offer:"))


def _record_only(environ: dict[str, str], items: list[tuple[int, int, int]], batch: int) -> None:
    rt = build_runtime(load_settings(environ=environ))
    try:
        for start in range(0, len(items), batch):
            now = rt.now()
            with rt.sessions.begin() as s:
                notifications.record_many(s, rt.settings, [
                    (member_id, Message(kind="deal", key=f"base:{member_id}:{store_id}", text=Text("Store deal", "5 yuan off"), deal_id=deal_id, store_id=store_id, page="pages/deals/d"))
                    for member_id, store_id, deal_id in items[start:start + batch]], now)
    finally:
        rt.close()


def run_record_baseline(st: Stack, members: list[int], stores: list[int], processes: int, batch: int) -> float:
    """Messages recorded per second with no decision: the same rows, written as the consumers write them."""
    rt = st.runtime()
    with rt.sessions.begin() as s:
        first_deal = {store: s.scalar(select(func.min(deals.Deal.id)).where(deals.Deal.store_id == store))
                      for store in stores}
    rt.close()
    items = [(m, store, first_deal[store]) for m, store in events_for(members, stores, 3, random.Random(2))]
    chunk = -(-len(items) // processes)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        list(pool.map(_record_only, [st.environ] * processes, [items[:batch]] * processes, [batch] * processes))
        started = time.perf_counter()  # the pool is warm: imports and connections are not timed
        list(pool.map(_record_only, [st.environ] * processes,
                      [items[i:i + chunk] for i in range(0, len(items), chunk)], [batch] * processes))
        return len(items) / (time.perf_counter() - started)


# --- 2. live -----------------------------------------------------------------------------------------

def _clients(url: str, tokens: list[tuple[int, str]], ready, go, out: str) -> None:
    """Hold one connection per (member, token); record each frame's arrival until told to stop."""

    async def main() -> None:
        from websockets.asyncio.client import connect

        got: list[tuple] = []
        gate = asyncio.Semaphore(100)  # handshakes at once
        connected = 0

        async def hold(member_id: int, token: str) -> None:
            nonlocal connected
            async with gate:
                ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                   compression=None, open_timeout=60, ping_interval=None)
            connected += 1
            try:
                async for text in ws:
                    now = time.time()
                    frame = json.loads(text)
                    if frame["type"] == "notification":
                        created = datetime.fromisoformat(frame["created_at"]).timestamp()
                        got.append(("offer", member_id, frame["store_id"], created, now))
                    elif frame["type"] == "bench":
                        got.append(("bare", member_id, None, frame["sent"], now))
            except Exception:
                pass

        tasks = [asyncio.create_task(hold(m, t)) for m, t in tokens]
        while connected < len(tokens):
            if any(t.done() for t in tasks):
                raise RuntimeError("a live client failed to connect")
            await asyncio.sleep(0.05)
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        Path(out).write_text(json.dumps(got))

    asyncio.run(main())


def run_live(st: Stack, members: list[int], tokens: list[str], stores: list[int], rate: float, seconds: float,
             consumers: int, client_procs: int, workdir: Path) -> dict[str, tuple[float, float]]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mallapp", "live", "--port", str(port)], env=st.process_env())
    url = f"ws://127.0.0.1:{port}{st.settings.live.path}"
    redis = st.runtime().redis
    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event() for _ in range(client_procs)]
    go = ctx.Event()
    pairs = list(zip(members, tokens, strict=True))
    outs = [str(workdir / f"clients-{i}.json") for i in range(client_procs)]
    procs: list = []
    consumers_procs: list[subprocess.Popen] = []
    try:
        time.sleep(1.0)
        for i in range(client_procs):
            p = ctx.Process(target=_clients, args=(url, pairs[i::client_procs], ready[i], go, outs[i]))
            p.start()
            procs.append(p)
        for r in ready:
            if not r.wait(180):
                raise RuntimeError("the live clients did not connect")
        while len(live.online(redis, members)) < len(members):
            time.sleep(0.2)
        log(f"  {len(members)} clients connected")
        consumers_procs = start_consumers(st, consumers, 100)

        # baseline: a bare PUBLISH per message, paced at the same rate
        rng = random.Random(3)
        n = int(rate * seconds)
        start = time.perf_counter()
        for k in range(n):
            _pace(start, k, rate)
            member_id = members[rng.randrange(len(members))]
            redis.publish(live.channel(member_id), live.frame("bench", sent=time.time()))
        time.sleep(2.0)

        # the offers: dwell events for the connected members at the same rate, each at different
        # stores (no more than the daily cap of three each, so every event brings an offer)
        per_member = min(3, -(-n // len(members)))
        events = events_for(members, stores, per_member, random.Random(4))[:n]
        n = len(events)
        at: dict[tuple[int, int], float] = {}
        start = time.perf_counter()
        last = b""
        for k in range(0, len(events), 10):
            _pace(start, k, rate)
            times, last = append_events(redis, events[k:k + 10], first_id=10_000_000 + k)
            at.update(times)
        deadline = time.monotonic() + 60
        while not _group_done(redis, last) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)
    finally:
        go.set()
        for p in procs:
            p.join(60)
        stop_all(consumers_procs)
        stop_all([server])
    frames = [f for out in outs if Path(out).exists() for f in json.loads(Path(out).read_text())]
    bare = [(recv - sent) * 1000 for kind, _, _, sent, recv in frames if kind == "bare"]
    offered = [(recv - created) * 1000 for kind, _, _, created, recv in frames if kind == "offer"]
    from_event = [(recv - at[m, s]) * 1000 for kind, m, s, _, recv in frames if kind == "offer" and (m, s) in at]
    return {"bare": _percentiles(bare), "offer": _percentiles(offered), "event": _percentiles(from_event),
            "counts": (len(bare), len(offered), n)}


def _pace(start: float, k: int, rate: float) -> None:
    wait = start + k / rate - time.perf_counter()
    if wait > 0:
        time.sleep(wait)


# --- the run -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delivery", description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=20_000, help="members deciding in part 1")
    parser.add_argument("--consumers", type=int, default=2, help="offers consumer processes")
    parser.add_argument("--count", type=int, default=500, help="entries a consumer reads per step in part 1")
    parser.add_argument("--clients", type=int, default=5000, help="open live connections in part 2")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages a second in part 2")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each part-2 load")
    parser.add_argument("--only", choices=("decisions", "live"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mallapp-bench-delivery-") as tmp:
        workdir = Path(tmp)
        with stack(workdir) as st:
            st.environ.update(MALL_OFFERS_QUIET_START="00:00", MALL_OFFERS_QUIET_END="00:00",
                              MALL_LOG_LEVEL="WARNING")
            log(f"seeding {args.members + args.clients} members, {STORES} stores, {STORES * DEALS_PER_STORE} deals")
            seeded = seed(st, args.members + args.clients)
            stores = seed_deals(st)
            deciders, live_members = seeded.member_ids[:args.members], seeded.member_ids[args.members:]
            ok = True
            if args.only in (None, "decisions"):
                rate, recorded = run_decisions(st, deciders, stores, args.consumers, args.count)
                baseline = run_record_baseline(st, deciders, stores, args.consumers, args.count)
                expected = 3 * len(deciders)
                met = rate >= DECISIONS_GOAL and recorded == expected
                ok &= met
                log(f"decisions: {rate:,.0f}/s from proximity events to recorded deliveries "
                    f"({recorded:,} offers recorded of {expected:,} expected; {args.consumers} consumers)")
                log(f"  baseline, recording the same messages with no decision: {baseline:,.0f}/s; "
                    f"ratio {rate / baseline:.2f}")
                log(f"  GOAL >= {DECISIONS_GOAL:,.0f}/s: {'MET' if met else 'MISSED'}")
            if args.only in (None, "live"):
                figures = run_live(st, live_members, seeded.tokens[args.members:], stores, args.rate, args.seconds,
                                   args.consumers, args.client_processes, workdir)
                (b50, b99), (o50, o99), (e50, e99) = figures["bare"], figures["offer"], figures["event"]
                n_bare, n_offer, expected = figures["counts"]
                met = o99 < LIVE_P99_GOAL_MS and n_offer == expected
                ok &= met
                log(f"live, {args.clients} connected clients, {args.rate:,.0f} messages/s for {args.seconds:.0f} s:")
                log(f"  offers delivered live: {n_offer:,} of {expected:,}; record -> client p50 {o50:.1f} ms, "
                    f"p99 {o99:.1f} ms; event -> client p50 {e50:.1f} ms, p99 {e99:.1f} ms")
                log(f"  baseline, a bare PUBLISH through the live server: {n_bare:,} received; "
                    f"p50 {b50:.1f} ms, p99 {b99:.1f} ms; ratio of p99s {o99 / b99:.2f}")
                log(f"  GOAL p99 < {LIVE_P99_GOAL_MS:.0f} ms: {'MET' if met else 'MISSED'}")
            with st.runtime().sessions.begin() as s:
                outcomes = {f"{channel}:{outcome}": n for channel, outcome, n in s.execute(
                    select(Delivery.channel, Delivery.outcome, func.count()).group_by(Delivery.channel, Delivery.outcome))}
            log(f"deliveries recorded: {outcomes}")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
