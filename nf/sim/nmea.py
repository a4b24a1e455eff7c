"""NMEA 0183 sentences of a simulated GPS receiver (pure: no clock, no I/O).

A receiver moving at a constant speed and course from a start fix; the
runner asks for the sentences of the fix at a given UTC time.  Positions use
a flat-earth step (a knot is a minute of latitude per hour), exact enough
for a simulator and simple enough to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


def checksum(body: str) -> str:
    """The two hex digits after ``*``: XOR of every character between
    ``$`` and ``*``."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return f"{value:02X}"


def sentence(body: str) -> bytes:
    """``$BODY*CS`` and CR LF, as a receiver sends it."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def parse(line: bytes) -> list[str]:
    """The fields of one sentence (talker+type first); ValueError when it is
    not a sentence or its checksum is wrong."""
    text = line.decode("ascii").strip()
    if not text.startswith("$") or "*" not in text:
        raise ValueError(f"not an NMEA sentence: {text!r}")
    body, _, given = text[1:].rpartition("*")
    if given.upper() != checksum(body):
        raise ValueError(f"bad checksum {given!r} (computed {checksum(body)}) in {text!r}")
    return body.split(",")


@dataclass(frozen=True)
class Fix:
    time: datetime  # UTC
    latitude: float  # degrees, north positive
    longitude: float  # degrees, east positive
    speed_knots: float
    course: float  # degrees true
    altitude: float = 42.0  # metres above mean sea level
    satellites: int = 8


def _angle(value: float, degree_digits: int, hemispheres: str) -> tuple[str, str]:
    hemisphere = hemispheres[0] if value >= 0 else hemispheres[1]
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    if round(minutes, 4) >= 60:  # 59.99999 rounds to 60.0000: carry it
        degrees, minutes = degrees + 1, 0.0
    return f"{degrees:0{degree_digits}d}{minutes:07.4f}", hemisphere


def _position(fix: Fix) -> str:
    """``llll.llll,N,yyyyy.yyyy,E`` as GGA and RMC both carry it."""
    lat, ns = _angle(fix.latitude, 2, "NS")
    lon, ew = _angle(fix.longitude, 3, "EW")
    return f"{lat},{ns},{lon},{ew}"


def _clock(time: datetime) -> str:
    return f"{time:%H%M%S}.{time.microsecond // 10000:02d}"


def gga(fix: Fix) -> bytes:
    """Fix data: time, position, quality 1 (GPS fix), satellites, HDOP, altitude."""
    body = (
        f"GPGGA,{_clock(fix.time)},{_position(fix)},1,{fix.satellites:02d},0.9,"
        f"{fix.altitude:.1f},M,46.9,M,,"
    )
    return sentence(body)


def rmc(fix: Fix) -> bytes:
    """Recommended minimum: time, status A (valid), position, speed, course, date."""
    body = (
        f"GPRMC,{_clock(fix.time)},A,{_position(fix)},{fix.speed_knots:05.1f},"
        f"{fix.course:05.1f},{fix.time:%d%m%y},,,A"
    )
    return sentence(body)


@dataclass(frozen=True)
class Track:
    """Constant speed and course from ``start``."""

    start: Fix

    def fix_at(self, time: datetime) -> Fix:
        hours = (time - self.start.time).total_seconds() / 3600
        distance = self.start.speed_knots * hours / 60  # degrees of a great circle
        course = math.radians(self.start.course)
        latitude = self.start.latitude + distance * math.cos(course)
        cos_lat = max(math.cos(math.radians(latitude)), 1e-6)
        longitude = self.start.longitude + distance * math.sin(course) / cos_lat
        longitude = (longitude + 180) % 360 - 180
        latitude = max(-89.9999, min(89.9999, latitude))
        return Fix(
            time,
            latitude,
            longitude,
            self.start.speed_knots,
            self.start.course,
            self.start.altitude,
            self.start.satellites,
        )

    def sentences(self, time: datetime) -> bytes:
        """What the receiver sends once per period: GGA then RMC."""
        fix = self.fix_at(time)
        return gga(fix) + rmc(fix)
