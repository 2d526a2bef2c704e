"""The demo mall: merchants and a member so a newcomer can try every endpoint at once."""

from __future__ import annotations

from sqlalchemy import select

from mallapp import merchants
from mallapp.runtime import Runtime

# The secret the embedded WeChat emulator accepts; it guards nothing real.
EMULATOR_SECRET = "demo-emulator-secret"
DEMO_MERCHANTS = ("Starlight Coffee", "Harbour Books", "Jade Garden Restaurant")


def seed(rt: Runtime) -> list[str]:
    """Create the demo merchants once; return lines telling the operator how to use them."""
    keys_file = rt.settings.var_path / "demo-merchant-keys.txt"
    with rt.sessions.begin() as session:
        existing = set(session.scalars(select(merchants.Merchant.name)))
        created = []
        for name in DEMO_MERCHANTS:
            if name not in existing:
                merchant, key = merchants.create(session, name, rt.now())
                created.append(f"{merchant.name}\t{key}")
    if created:
        # Keys are stored hashed; the demo keeps its own copy so the operator can use them later.
        with keys_file.open("a") as fh:
            fh.write("\n".join(created) + "\n")
        keys_file.chmod(0o600)
    return [f"demo merchant keys: {keys_file}"]
