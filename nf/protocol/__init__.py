"""Pure relay protocol machines: who may use the serial port, and how serial
data is cut into network frames.

Nothing in this package does I/O, reads a clock or knows about anyio.  Each
machine takes events (bytes read, a session connected, time passing) with the
current time ``now`` passed in as float seconds of a monotonic clock, and
returns what the runtime must do as plain values.  That keeps the rules of
SPEC §3 testable in microseconds, byte for byte, and lets the runtime stay a
thin shell that only moves bytes and schedules wake-ups.

``arbitration``
    Raw / Failover / Slotted sharing of one serial port between a primary
    and a secondary TCP session.  ``from_net``, ``from_serial``,
    ``connect``, ``disconnect`` and ``tick`` return a list of actions
    (``ToSerial``, ``ToNet``, ``Drop``, ``StatusChange``) to carry out in
    order.

``packing``
    The serial -> network framer (delimiter, max-frame-size, frame-delay).

Contracts shared by both machines:

* Timers.  ``deadline()`` says when the machine next needs ``tick`` (or
  ``flush_due``); ``None`` means never.  A timer is due when
  ``now >= deadline()``, so calling it with exactly ``deadline()`` always
  fires it.  Every event method first settles timers that are already due
  at its ``now``, so the outcome never depends on how punctually the
  runtime woke up: a late wake-up only makes things happen late, never in a
  different order.
* Zero copy.  Data is ``bytes`` and is handed back inside actions or frames
  without copying where the rules allow; the runtime must therefore never
  pass a buffer it will reuse (``bytearray``/``memoryview`` of a read
  buffer).
* Accounting.  No byte disappears: every byte given to a machine is
  delivered, reported in a ``Drop`` (which names the counter to increment),
  or still held (``queued`` / ``pending``).

Wiring advice for the runtime: arbitrate first, frame second.  Route each
serial read through ``Arbiter.from_serial`` when it arrives (so that slot
timing sees the byte when it really came) and feed each ``ToNet`` into a
per-session ``Framer``; peer mode (UDP, no arbitration) uses one framer and
sends every frame to every destination.  A channel without a secondary port
uses ``RawArbiter`` with only the primary ever connected, which gives the
"no session -> dropped-bytes" rule for free.
"""
