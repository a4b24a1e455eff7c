"""The two planes of the daemon and what joins them.

``supervisor``: ``nf run`` itself, which starts, restarts and stops the two
processes.  ``control``: the control-plane process (``nf.app.serve`` with a
remote runtime).  ``dataplane``: the data-plane process (the relay runtime
behind a Unix socket).  ``messages``: the versioned, typed messages and
their framing on a stream socket.  ``remote``: ``RemoteRuntime``, the
control plane's ``nf.runtime.transaction.Runtime`` over that socket.
``core``: the pure bookkeeping both sides keep (events waiting for a
control plane, dropped bytes seen, relay sessions known open).

Nothing the data plane or the supervisor imports loads the schema, XML or
NETCONF code (tests/test_plane.py checks the data plane's ``sys.modules``).
"""
