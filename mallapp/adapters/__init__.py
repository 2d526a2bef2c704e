"""Adapters: the outside systems mallapp talks to (WeChat, the live channel in Redis).

They build on the foundation and the domain's ports; the runtime plugs them in.
"""
