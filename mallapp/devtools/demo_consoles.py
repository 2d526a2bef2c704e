"""The demo mall's console sign-ins and a restaurant with something to host: staff, a queue, today's tables.

Idempotent like the rest of the demo: each start adds only what is missing. Passwords are random and
written once, readable only by the operator, to ``var/demo-staff-passwords.txt`` (username, password,
merchant, role per line), beside the ops user's ``var/demo-ops-password.txt``.
"""

from __future__ import annotations

import secrets
from datetime import time, timedelta

from sqlalchemy import select

from mallapp.domain import merchants, queueing, reservation_admin, staff
from mallapp.domain.merchants import Merchant
from mallapp.domain.venue import Store
from mallapp.runtime import Runtime

RESTAURANT = "Jade Garden Restaurant"
# (username, merchant, role): the restaurant's manager and its host/cashier, and a café's cashier.
DEMO_STAFF = (("jade-manager", RESTAURANT, "manager"),
              ("jade-host", RESTAURANT, "cashier"),
              ("coffee-cashier", "Starlight Coffee", "cashier"))
QUEUE_BANDS = (queueing.BandSpec("A", "1-2", 1, 2), queueing.BandSpec("B", "3-4", 3, 4),
               queueing.BandSpec("C", "5+", 5, None))
SLOT_TIMES = (time(11, 30), time(12, 30), time(17, 30), time(18, 30), time(19, 30))
SLOT_BANDS = (reservation_admin.Band(1, 2, 4), reservation_admin.Band(3, 4, 3), reservation_admin.Band(5, 10, 1))
SLOT_DAYS = 7


def seed_staff(rt: Runtime) -> list[str]:
    """Make the demo staff accounts that are missing; return the operator's lines."""
    path = rt.settings.var_path / "demo-staff-passwords.txt"
    made = []
    with rt.sessions.begin() as s:
        by_name = {m.name: m.id for m in s.scalars(select(merchants.Merchant))}
        existing = set(s.scalars(select(staff.Staff.username)))
        for username, merchant, role in DEMO_STAFF:
            if username in existing or merchant not in by_name:
                continue
            password = secrets.token_urlsafe(12)
            staff.create(s, by_name[merchant], username, role, password, rt.now())
            made.append(f"{username}\t{password}\t{merchant}\t{role}")
    if made:
        with path.open("a") as fh:
            fh.write("\n".join(made) + "\n")
        path.chmod(0o600)
    return [f"demo staff sign-ins (the till, the host, the merchant console): {path}"]


def seed_restaurant(rt: Runtime) -> None:
    """Give the demo restaurant an open queue and a week of reservation slots from today (once)."""
    now = rt.now()
    today = rt.settings.mall.local_day(now)
    with rt.sessions.begin() as s:
        # The restaurant's store is found through its merchant: the store goes by its Chinese name (翠园酒家).
        store = s.scalar(select(Store).join(Merchant, Merchant.id == Store.merchant_id)
                         .where(Merchant.name == RESTAURANT).order_by(Store.id).limit(1))
        if store is None or store.merchant_id is None:
            return
        if not queueing.bands(s, store.id):
            queueing.set_bands(s, rt.settings, store.merchant_id, store.id, QUEUE_BANDS, now)
            queueing.set_open(s, rt.settings, store.merchant_id, store.id, True, None, now)
        start, _ = rt.settings.mall.day_bounds(today)
        _, end = rt.settings.mall.day_bounds(today + timedelta(days=SLOT_DAYS - 1))
        if not reservation_admin.store_slots(s, store.merchant_id, store.id, start, end):
            reservation_admin.publish(s, rt.settings, store.merchant_id, store.id, first_day=today,
                                      last_day=today + timedelta(days=SLOT_DAYS - 1), times=list(SLOT_TIMES),
                                      duration_minutes=90, bands=list(SLOT_BANDS), now=now)
