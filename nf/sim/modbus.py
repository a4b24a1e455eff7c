"""``nf sim modbus``: a Modbus RTU slave on a pseudo-terminal, built on pymodbus.

pymodbus's serial server opens a serial device by path, and the only path a
pseudo-terminal has is its slave, the daemon's end.  So the slave runs on a
second, inner pty and this process copies bytes between the two masters: the
daemon and pymodbus each see a serial port, and nothing of pymodbus's
internals is touched.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from nf.sim.pty import PtyDevice, PtyStream, stop_on_signals

#: Holding register i holds REGISTER_BASE + i: a master can check every value it reads.
REGISTER_BASE = 1000


def holding_registers(count: int) -> list[int]:
    """The known values of holding registers 0..count-1."""
    return [(REGISTER_BASE + i) & 0xFFFF for i in range(count)]


def device(unit: int, registers: int) -> SimDevice:
    """Slave ``unit`` with ``registers`` writable holding registers from address 0."""
    return SimDevice(
        id=unit,
        simdata=[SimData(0, values=holding_registers(registers), datatype=DataType.REGISTERS)],
    )


async def serve(outer: PtyDevice, unit: int, registers: int) -> None:
    """Run the slave behind ``outer`` until SIGTERM/SIGINT."""
    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # its deprecation chatter
    loop = asyncio.get_running_loop()
    stop = stop_on_signals()
    with PtyDevice() as inner:
        streams: dict[str, PtyStream] = {}
        streams["outer"] = PtyStream(loop, outer.master, lambda d: streams["inner"].write(d))
        streams["inner"] = PtyStream(loop, inner.master, lambda d: streams["outer"].write(d))
        server = ModbusSerialServer(
            device(unit, registers), framer=FramerType.RTU, port=inner.path, baudrate=115200
        )
        await server.serve_forever(background=True)
        try:
            await stop.wait()
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it bare
            for stream in streams.values():
                stream.close()
