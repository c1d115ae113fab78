"""AEDAT 4.0 event files (iniVation's DV format, as CIFAR10-DVS ships them): the writer lives here,
decoding is tonic's own reader (tonic.io.read_aedat4, through the `aedat` package).

A file is the magic line, a little-endian u32 length and an IOHeader flatbuffer (compression,
position of the optional data table, the XML description of the streams), then packets: u32
stream id, u32 length and a size-prefixed EventPacket flatbuffer (file identifier "EVTS") holding
16-byte Event structs (int64 t in us, int16 x, int16 y, bool on, 3 padding bytes). We write one
uncompressed event stream 0, no data table (file_data_position -1: read to the end of the file),
in packets of at most PACKET_EVENTS events. The flatbuffers are laid out by hand with every
scalar aligned to its size from the start of its buffer, which is what the flatbuffers verifier
checks (schemas: the aedat package's flatbuffers/ioheader.fbs and events.fbs).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...files import atomic_write

MAGIC = b"#!AER-DAT4.0\r\n"
PACKET_EVENTS = 65_536  # DV's recorder writes packets of a few thousand events; any size reads back
EVENT = np.dtype({"names": ["t", "x", "y", "on"], "formats": ["<i8", "<i2", "<i2", "u1"],
                  "offsets": [0, 8, 10, 12], "itemsize": 16})
_DESCRIPTION = (
    '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
    '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
    '<attr key="compression" type="string">NONE</attr>'
    '<attr key="originalModuleName" type="string">speck-mtt</attr>'
    '<attr key="originalOutputName" type="string">events</attr>'
    '<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>'
    '<attr key="typeIdentifier" type="string">EVTS</attr>'
    '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
    '<attr key="sizeX" type="int">{w}</attr><attr key="sizeY" type="int">{h}</attr>'
    '<attr key="source" type="string">speck-mtt</attr>'
    '</node></node></node></dv>'
)


def _ioheader(description: str) -> bytes:
    """IOHeader table {compression: int32 = 0 (none), file_data_position: int64 = -1, description}."""
    text = description.encode()
    # 0 root offset | 4 "IOHE" | 8 vtable (5 u16) | 18 pad | 20 table: soffset, compression,
    # description offset, pad-free int64 at 32 | 40 string: u32 length, bytes, NUL
    vtable = struct.pack("<5H", 10, 20, 4, 12, 8)
    table = struct.pack("<iiIq", 20 - 8, 0, 40 - 28, -1)
    head = struct.pack("<I", 20) + b"IOHE" + vtable + b"\0\0" + table
    return head + struct.pack("<I", len(text)) + text + b"\0"


def _event_packet(chunk: np.ndarray) -> bytes:
    """Size-prefixed EventPacket {elements: [Event]}; the Event vector's data starts 8-aligned."""
    # 0 size prefix | 4 root offset | 8 "EVTS" | 12 vtable (3 u16) | 18 pad | 20 table: soffset,
    # vector offset | 28 vector length | 32 elements
    body = (struct.pack("<I", 20 - 4) + b"EVTS" + struct.pack("<3H", 6, 8, 4) + b"\0\0"
            + struct.pack("<iII", 20 - 12, 28 - 24, len(chunk)) + chunk.tobytes())
    return struct.pack("<I", len(body)) + body


def encode_aedat4(events: np.ndarray, width: int, height: int) -> bytes:
    """An x/y/p/t structured array (t in us, sorted) as an uncompressed AEDAT 4.0 file."""
    if len(events) == 0:
        raise DataError("cannot write an empty recording: the CIFAR10-DVS reader needs at least one event")
    t = events["t"].astype(np.int64)
    x, y, p = (events[k].astype(np.int64) for k in ("x", "y", "p"))
    if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
        raise DataError(f"AEDAT4 events must lie on the {width}x{height} sensor")
    if ((p != 0) & (p != 1)).any() or t.min() < 0 or (np.diff(t) < 0).any():
        raise DataError("AEDAT4 events need polarity 0/1 and sorted, non-negative timestamps")
    packed = np.zeros(len(t), EVENT)
    packed["t"], packed["x"], packed["y"], packed["on"] = t, x, y, p
    header = _ioheader(_DESCRIPTION.format(w=width, h=height))
    parts = [MAGIC, struct.pack("<I", len(header)), header]
    for start in range(0, len(packed), PACKET_EVENTS):
        packet = _event_packet(packed[start:start + PACKET_EVENTS])
        parts += [struct.pack("<II", 0, len(packet)), packet]
    return b"".join(parts)


def write_aedat4(path: str | Path, events: np.ndarray, width: int, height: int) -> None:
    """Write an .aedat4 atomically: a killed run never leaves half a file."""
    data = encode_aedat4(events, width, height)
    atomic_write(path, lambda fh: fh.write(data), fsync=False)
