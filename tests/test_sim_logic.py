"""The pure parts of ``nf sim``: traffic frames, the checker's counts, the
token bucket, NMEA sentences and the Modbus register map."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nf.sim import frames, nmea
from nf.sim.frames import OVERHEAD, Checker, Pattern, encode
from nf.sim.modbus import REGISTER_BASE, holding_registers


def stream(seqs: list[int], size: int = 40, pattern: Pattern = Pattern.COUNTER) -> bytes:
    return b"".join(encode(s, size, pattern) for s in seqs)


def report_of(data: bytes, chunk: int = 7) -> frames.Report:
    """Fed in small chunks: frames split across reads must not matter."""
    checker = Checker()
    for i in range(0, len(data), chunk):
        checker.feed(data[i : i + chunk])
    checker.decoder.finish()
    return checker.report()


@pytest.mark.parametrize("pattern", list(Pattern))
def test_a_clean_stream_is_clean(pattern: Pattern) -> None:
    data = stream(list(range(50)), 64, pattern)
    assert len(data) == 50 * 64
    report = report_of(data)
    assert report.frames == 50 and report.bytes == len(data)
    assert (report.first_seq, report.last_seq) == (0, 49)
    assert report.lost == report.reordered == report.duplicated == 0
    assert report.crc_errors == report.payload_errors == report.garbage_bytes == 0
    assert report.clean


def test_loss_reorder_and_duplicates_are_counted() -> None:
    # 0..19 sent; 5 and 6 lost, 10 arrives after 12, 15 arrives twice
    seqs = [0, 1, 2, 3, 4, 7, 8, 9, 11, 12, 10, 13, 14, 15, 15, 16, 17, 18, 19]
    report = report_of(stream(seqs))
    assert report.frames == len(seqs)
    assert report.lost == 2
    assert report.reordered == 1
    assert report.duplicated == 1
    assert not report.clean


def test_a_late_start_is_not_loss_but_a_missing_tail_is_when_announced() -> None:
    checker = Checker()
    checker.feed(stream(list(range(100, 110))))
    assert checker.report().lost == 0 and checker.report().first_seq == 100
    checker.sequence.expect_up_to(114)  # the sender said it sent up to 114
    assert checker.report().lost == 5


def test_resync_after_a_partial_frame_and_corruption() -> None:
    good = stream(list(range(10)))
    frame = 40
    damaged = bytearray(good)
    damaged[3 * frame + 20] ^= 0xFF  # payload of frame 3: CRC fails, frame dropped
    data = good[frame // 2 : frame] + bytes(damaged[frame:])  # starts mid-frame 0
    report = report_of(data)
    assert report.crc_errors == 1
    assert report.frames == 8  # 1, 2, 4..9
    assert report.lost == 1  # frame 3
    assert report.garbage_bytes == frame // 2 + frame  # the half frame and the damaged one


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    noise = b"\xa5\x00\xa5\x5a\x09junk"  # a half magic and a false magic too
    data = stream([0, 1]) + noise + stream([2, 3])
    report = report_of(data, chunk=3)
    assert report.frames == 4 and report.lost == 0
    assert report.garbage_bytes == len(noise)


def test_a_truncated_last_frame_counts_as_garbage() -> None:
    data = stream([0, 1, 2])[:-5]
    report = report_of(data)
    assert report.frames == 2 and report.garbage_bytes == 40 - 5


def test_a_payload_that_is_not_the_patterns_is_an_error() -> None:
    body = bytearray(encode(7, 30, Pattern.FIXED))
    body[OVERHEAD - 4] = 0x56  # first payload byte, then a correct CRC for it
    body[-4:] = struct.pack(">I", zlib.crc32(bytes(body[2:-4])))
    report = report_of(bytes(body))
    assert report.frames == 1 and report.payload_errors == 1 and not report.clean


def test_frame_sizes_are_bounded() -> None:
    assert len(encode(0, OVERHEAD, Pattern.RANDOM)) == OVERHEAD
    with pytest.raises(ValueError):
        encode(0, OVERHEAD - 1, Pattern.COUNTER)
    with pytest.raises(ValueError):
        encode(0, frames.MAX_FRAME + 1, Pattern.COUNTER)


def test_nothing_received_is_not_clean() -> None:
    assert not Checker().report().clean


@given(
    st.lists(st.integers(0, 200), min_size=1, max_size=60),
    st.integers(1, 50),
)
def test_counts_match_a_model_of_the_sequence(seqs: list[int], chunk: int) -> None:
    """Any order and repetition, against the definitions stated whole: lost
    is what never came between the first and the highest; a reorder is the
    first arrival of a number above the first after a higher one; every
    other arrival that is not a new highest is a duplicate."""
    report = report_of(stream(seqs, 24, Pattern.RANDOM), chunk)
    first = seqs[0]
    new_highs = sum(1 for i, s in enumerate(seqs) if i == 0 or s > max(seqs[:i]))
    reordered = sum(
        1 for i, s in enumerate(seqs) if i > 0 and first < s < max(seqs[:i]) and s not in seqs[:i]
    )
    assert report.frames == len(seqs)
    assert (report.first_seq, report.last_seq) == (first, max(seqs))
    assert report.lost == len(set(range(first, max(seqs) + 1)) - set(seqs))
    assert report.reordered == reordered
    assert report.duplicated == len(seqs) - new_highs - reordered
    assert report.clean == (seqs == list(range(first, first + len(seqs))))


def test_pacer_gives_the_rate_and_no_burst_after_a_pause() -> None:
    pacer = frames.Pacer(rate=1000, size=100, now=0.0)
    assert pacer.due(0.0) == 1  # one frame at once
    sent = sum(pacer.due(t / 100) for t in range(1, 101))  # one second in 10 ms steps
    assert sent == 10
    assert pacer.due(60.0) == 1  # a minute stalled: a tenth of a second's worth (100 B)
    assert pacer.wait() == pytest.approx(0.1)


# -- NMEA ------------------------------------------------------------------------------
def test_nmea_checksum_of_a_known_sentence() -> None:
    # the classic example fix from the NMEA 0183 descriptions
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert nmea.checksum(body) == "47"
    assert nmea.sentence(body) == f"${body}*47\r\n".encode()


def test_nmea_parse_refuses_a_wrong_checksum() -> None:
    good = nmea.sentence("GPRMC,1,A")
    assert nmea.parse(good) == ["GPRMC", "1", "A"]
    with pytest.raises(ValueError, match="bad checksum"):
        nmea.parse(good.replace(b"A*", b"V*"))
    with pytest.raises(ValueError, match="not an NMEA"):
        nmea.parse(b"hello\r\n")


def test_gga_and_rmc_fields() -> None:
    start = datetime(2024, 3, 23, 12, 35, 19, 500000, tzinfo=UTC)
    fix = nmea.Fix(start, 48.1173, -11.5, 22.4, 84.4, altitude=545.4, satellites=8)
    gga = nmea.parse(nmea.gga(fix))
    assert gga[:6] == ["GPGGA", "123519.50", "4807.0380", "N", "01130.0000", "W"]
    assert gga[6:10] == ["1", "08", "0.9", "545.4"]
    rmc = nmea.parse(nmea.rmc(fix))
    assert rmc[:7] == ["GPRMC", "123519.50", "A", "4807.0380", "N", "01130.0000", "W"]
    assert rmc[7:10] == ["022.4", "084.4", "230324"]


def test_track_moves_along_its_course() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    north = nmea.Track(nmea.Fix(start, 10.0, 20.0, 60.0, 0.0))
    after = north.fix_at(start + timedelta(hours=1))  # 60 knots north: one degree
    assert after.latitude == pytest.approx(11.0) and after.longitude == pytest.approx(20.0)
    east = nmea.Track(nmea.Fix(start, 0.0, 179.5, 60.0, 90.0))
    assert east.fix_at(start + timedelta(hours=1)).longitude == pytest.approx(-179.5)
    lines = north.sentences(start).splitlines()
    assert [nmea.parse(line)[0] for line in lines] == ["GPGGA", "GPRMC"]


def test_modbus_registers_are_known_values() -> None:
    assert holding_registers(3) == [REGISTER_BASE, REGISTER_BASE + 1, REGISTER_BASE + 2]
