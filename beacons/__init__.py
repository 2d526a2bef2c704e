"""The gateway's BLE listener: frames, a bleak scanner, a forwarder to the backend.

Runs on a gateway in the mall, without Flask; its content arrives with the beacons work.
"""
