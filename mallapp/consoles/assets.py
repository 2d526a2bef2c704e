"""The consoles' third-party browser files, fetched from the npm registry at set-up and served by the app.

    python -m mallapp.consoles.assets            # fetch what is missing (./dev does this before run and test)
    python -m mallapp.consoles.assets --check    # exit 1 if anything is missing

Nothing is fetched at run time and no page names a CDN: each package below is pinned to one version and
its registry tarball's sha512 (the ``integrity`` npm records in a lock file), checked before a byte is
unpacked. Only the files a page loads are kept, with the package's licence, under
``mallapp/consoles/static/vendor/<name>-<version>/`` (git ignores the folder). Another registry mirror can
be named with ``MALL_NPM_REGISTRY``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from mallapp.consoles.vendor import PACKAGES, VENDOR, Package

REGISTRY = "https://registry.npmjs.org"


def _verify(package: Package, data: bytes) -> None:
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise RuntimeError(f"{package.name}@{package.version}: the tarball's {algorithm} is {actual}, "
                           f"not the pinned {expected}; refusing to unpack it")


def install(package: Package, registry: str = REGISTRY) -> None:
    """Fetch, verify and unpack ``package``'s files (replacing a partial earlier attempt)."""
    with urllib.request.urlopen(package.tarball_url(registry), timeout=120) as answer:  # noqa: S310 (a pinned https URL)
        data = answer.read()
    _verify(package, data)
    VENDOR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=VENDOR, prefix=".staging-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for file in package.files:
                member = archive.getmember(f"package/{file}")
                source = archive.extractfile(member)
                if source is None:
                    raise RuntimeError(f"{package.name}: package/{file} is not a file")
                target = staging / file
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read())
        shutil.rmtree(package.folder, ignore_errors=True)
        staging.rename(package.folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def missing() -> list[Package]:
    return [p for p in PACKAGES if not p.installed()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mallapp.consoles.assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say what is missing (exit 1 if anything is)")
    args = parser.parse_args(argv)
    todo = missing()
    if args.check:
        for package in todo:
            print(f"missing: {package.name}@{package.version}")
        return 1 if todo else 0
    registry = os.environ.get("MALL_NPM_REGISTRY", REGISTRY)
    for package in todo:
        print(f"fetching {package.name}@{package.version} from {registry}", file=sys.stderr)
        install(package, registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
