"""The consoles' third-party browser files: which npm packages, pinned to a version and a tarball digest.

``mallapp.consoles.assets`` fetches them at set-up (``./dev`` does); pages load them from
:func:`url_path`, served by the app itself (no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VENDOR = Path(__file__).with_name("static") / "vendor"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str               # "sha512-<base64>", as npm's registry metadata gives it
    files: tuple[str, ...]       # paths inside the tarball's package/ folder

    @property
    def folder(self) -> Path:
        return VENDOR / f"{self.name}-{self.version}"

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"

    def installed(self) -> bool:
        return all((self.folder / f).is_file() for f in self.files)


PACKAGES = (
    # Charts (Apache ECharts): its ZH and EN locales are built in.
    Package("echarts", "6.1.0",
            "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==",
            ("dist/echarts.min.js", "LICENSE", "NOTICE")),
    # QR codes from the till's camera where the browser has no BarcodeDetector.
    Package("jsqr", "1.4.0",
            "sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A==",
            ("dist/jsQR.js", "LICENSE")),
)


def url_path(name: str, file: str) -> str:
    """The path a page loads a vendored file from: ``/console/static/vendor/echarts-6.1.0/dist/echarts.min.js``."""
    package = next(p for p in PACKAGES if p.name == name)
    return f"/console/static/vendor/{package.name}-{package.version}/{file}"
