"""The configuration store: one transaction engine and what uses it.

``engine.py`` owns running and every change of it (validate, diff,
prepare, apply or abort, publish); ``candidate.py``, ``locks.py`` and
``confirmed.py`` are small objects built on it.  Nothing here knows
NETCONF's option names or datastore names beyond running, candidate and
startup: the rpc handlers (``nf.northbound.rpcs``) turn an rpc into these
calls.
"""
