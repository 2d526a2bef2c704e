"""The consoles' browser files: pinned, checked before unpacking, served by the app, never from a CDN."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from pathlib import Path

import pytest

from mallapp.consoles import assets, vendor

CONSOLES = Path(vendor.__file__).parent


def _tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_every_package_is_pinned_to_a_version_and_a_sha512():
    for package in vendor.PACKAGES:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package
        assert package.integrity.startswith("sha512-") and len(package.integrity) == 95, package


def test_a_tarball_that_is_not_the_pinned_one_is_refused_before_unpacking():
    package = vendor.PACKAGES[0]
    with pytest.raises(RuntimeError, match="refusing to unpack"):
        assets._verify(package, _tarball({f: b"tampered" for f in package.files}))


def test_install_unpacks_only_the_listed_files(tmp_path, monkeypatch):
    data = _tarball({"dist/lib.js": b"ok();", "dist/other.js": b"nope", "LICENSE": b"Apache-2.0"})
    package = vendor.Package("lib", "1.0.0", "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
                             ("dist/lib.js", "LICENSE"))
    monkeypatch.setattr(vendor, "VENDOR", tmp_path)
    monkeypatch.setattr(assets, "VENDOR", tmp_path)

    class Answer(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(assets.urllib.request, "urlopen", lambda url, timeout: Answer(data))
    assets.install(package, "https://registry.example")
    folder = tmp_path / "lib-1.0.0"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == ["LICENSE",
                                                                                                   "dist/lib.js"]


def test_no_page_or_script_names_another_origin():
    sources = [p for p in CONSOLES.rglob("*") if p.suffix in {".html", ".js", ".css"} and "vendor" not in p.parts]
    assert sources
    # XML namespace names (SVG's) are identifiers, never fetched.
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    offenders = [f"{p.relative_to(CONSOLES)}: {m.group(0)}" for p in sources
                 for m in re.finditer(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/\w.-]*", p.read_text())
                 if m.group(0) not in namespaces]
    assert offenders == []
