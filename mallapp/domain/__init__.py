"""The domain: one module or package per noun, plain functions over a SQLAlchemy ``Session``.

Domain code imports only the foundation (``errors``, ``db``, ``settings``, ``logs``) and other
domain modules. It never imports Flask, an adapter, the runtime or a process, and never commits:
the caller owns the transaction. Messages to members leave through the ports in
:mod:`mallapp.domain.notifications`, after the caller's commit.
"""
