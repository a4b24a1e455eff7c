"""XPath filters that may be costly run in a child process with a deadline.

libxml2 evaluates XPath 1.0 fully, but some expressions cost far more than
linear time in the data: it merges node-sets with a duplicate check, so a
union (``//*|//*``) or a descendant step from a large node-set
(``//*//*``) is quadratic, and a predicate with an absolute path is
evaluated once per context node.  On a 1000-channel ``<get>`` fifty unions
took 28 s, and nothing can interrupt libxml2 once it runs.

So an expression that ``filters`` cannot prove cheap is evaluated here, in
a separate process that is killed when it passes its deadline; the client
gets ``resource-denied`` and the session, the daemon and every other user
go on.  The worker is started on first use (``spawn``: a fresh interpreter,
nothing inherited from the daemon's threads) and replaced after a kill.
Sessions take turns on it, each wait bounded by the same deadline.

The data goes over as serialized XML and the answer comes back as the
document-order positions of the selected elements, which the caller maps
onto its own copy of the document.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from lxml import etree

DEADLINE = 2.0
"""Seconds an XPath filter may take, waiting for the worker included."""
MEMORY_LIMIT = 1 << 30
"""Address space of the worker: an expression building huge strings fails
there, not in the daemon."""


class XPathTooCostly(Exception):
    """The expression did not finish within the deadline."""


class XPathFailed(Exception):
    """libxml2 refused the expression (the message says why)."""


def positions(
    holder: etree._Element,
    expr: str,
    namespaces: dict[str, str],
    order: dict[etree._Element, int] | None = None,
) -> list[int]:
    """Evaluate ``expr`` with ``holder`` as context node; the document-order
    positions (``holder.iter()``, holder = 0) of the elements it selects.
    Text and attribute results stand for their element.  ``order`` maps
    each element of ``holder`` to its position; a caller evaluating several
    expressions on one document passes it, so it is built once."""
    if order is None:
        order = {elem: i for i, elem in enumerate(holder.iter())}
    result = etree.XPath(expr, namespaces=namespaces)(holder)
    found: list[int] = []
    if not isinstance(result, list):
        return found
    for item in result:
        elem = item if isinstance(item, etree._Element) else None
        if elem is None:
            getparent = getattr(item, "getparent", None)
            parent = getparent() if getparent is not None else None
            if isinstance(parent, etree._Element) and getattr(item, "is_tail", False):
                parent = parent.getparent()
            elem = parent if isinstance(parent, etree._Element) else None
        if elem is not None and elem in order:
            found.append(order[elem])
    return found


def _serve(conn: Connection) -> None:
    """The worker's loop: (xml, expr, namespaces) in, positions or an error out."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    while True:
        try:
            xml, expr, namespaces = conn.recv()
        except EOFError:
            return
        try:
            holder = etree.fromstring(xml, parser=parser)
            conn.send(("ok", positions(holder, expr, namespaces)))
        except (etree.XPathError, etree.XMLSyntaxError, MemoryError) as exc:
            conn.send(("error", str(exc) or type(exc).__name__))


class XPathSandbox:
    """One worker process, shared by the sessions in turn."""

    def __init__(self, deadline: float = DEADLINE) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self.killed = 0
        """Workers killed for passing the deadline."""

    def _start(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._stop()
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs,), name="nf-xpath", daemon=True)
        process.start()
        theirs.close()
        self._process, self._conn = process, ours
        return ours

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.kill()
                self._process.join(1)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._process = self._conn = None

    def positions(self, holder: etree._Element, expr: str, namespaces: dict[str, str]) -> list[int]:
        """``positions()`` in the worker; XPathTooCostly past the deadline."""
        if not self._lock.acquire(timeout=self.deadline):
            raise XPathTooCostly("the XPath evaluator is busy with other requests")
        try:
            conn = self._start()
            conn.send((etree.tostring(holder), expr, namespaces))
            if not conn.poll(self.deadline):
                self.killed += 1
                self._stop()
                raise XPathTooCostly(f"evaluation took longer than {self.deadline:g} s")
            try:
                status, value = conn.recv()
            except (EOFError, OSError) as exc:  # the worker died (memory limit)
                self._stop()
                raise XPathTooCostly("the evaluation ran out of memory") from exc
        finally:
            self._lock.release()
        if status != "ok":
            raise XPathFailed(str(value))
        assert isinstance(value, list)
        return value

    def close(self) -> None:
        with self._lock:
            self._stop()
