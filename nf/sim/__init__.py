"""Simulated serial devices on pseudo-terminals (``nf sim``).

A lab or a test needs something at the far end of a serial port without
hardware: each mode opens a pseudo-terminal, prints the path of its slave
side (the device to configure in a serial-port's ``device`` leaf) as the first
line of stdout, and plays a device on the master side until SIGTERM/SIGINT.
The protocol logic of each device (NMEA sentences, traffic frames and their
checker) lives in pure modules beside the thin I/O of :mod:`nf.sim.pty`.
"""
