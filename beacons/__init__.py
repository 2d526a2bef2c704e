"""The gateway's BLE listener: frames, a bleak scanner, a forwarder to the backend.

Runs on a gateway in the mall, without Flask and without mallapp: plain stdlib and bleak.
See beacons/README.md for the capture format and the wire protocol.

    frames     parse_ibeacon, parse_eddystone, parse_advertisement -> IBeacon, EddystoneUID/URL/TLM
    sighting   Sighting and its JSON shape
    listener   Listener: BleakScanner callback -> bounded queue, restart with backoff
    replay     ReplayScanner (a bleak backend) playing a ReplaySource (capture file or data set)
    forwarder  Forwarder: batch, sign (sign()), POST, retry; Spool for when the backend is away
    gateway    Gateway / GatewayConfig / run_gateway: all of it in one process
"""

from beacons.capture import Advert, CaptureError, CaptureWriter, read_capture, write_capture
from beacons.datasets import DATASET_UUIDS, DATASETS, dataset_adverts
from beacons.forwarder import (
    MAX_BATCH,
    Forwarder,
    ForwarderCounters,
    GatewayKey,
    Response,
    encode_batch,
    new_nonce,
    parse_key,
    sign,
)
from beacons.frames import (
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    parse_advertisement,
    parse_eddystone,
    parse_ibeacon,
)
from beacons.gateway import Gateway, GatewayConfig, run_gateway
from beacons.listener import Listener, ListenerCounters
from beacons.replay import ReplayScanner, ReplaySource
from beacons.sighting import Sighting
from beacons.spool import Spool

__all__ = [
    "DATASETS",
    "DATASET_UUIDS",
    "MAX_BATCH",
    "Advert",
    "CaptureError",
    "CaptureWriter",
    "EddystoneTLM",
    "EddystoneUID",
    "EddystoneURL",
    "Forwarder",
    "ForwarderCounters",
    "Gateway",
    "GatewayConfig",
    "GatewayKey",
    "IBeacon",
    "Listener",
    "ListenerCounters",
    "ReplayScanner",
    "ReplaySource",
    "Response",
    "Sighting",
    "Spool",
    "dataset_adverts",
    "encode_batch",
    "new_nonce",
    "parse_advertisement",
    "parse_eddystone",
    "parse_ibeacon",
    "parse_key",
    "read_capture",
    "run_gateway",
    "sign",
    "write_capture",
]
