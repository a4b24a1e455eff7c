"""The boundary between the planes as a process boundary.

``messages``: the versioned, typed messages and their framing on a stream
socket.  ``dataplane``: the data-plane process (the relay runtime behind a
Unix socket).  ``remote``: ``RemoteRuntime``, the control plane's
``nf.runtime.transaction.Runtime`` over that socket.  ``core``: the pure
bookkeeping both sides keep (events waiting for a control plane, dropped
bytes seen, relay sessions known open).

Nothing here imports the schema, XML or NETCONF code: the data plane runs
without them (tests/test_plane.py checks its ``sys.modules``).
"""
