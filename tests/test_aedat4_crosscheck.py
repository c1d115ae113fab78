"""Our AEDAT 4.0 writer against an independent one: faery's encoder (Rust, its own flatbuffers).
Each file is decoded by the other side's reader, so a header or packet layout that only our own
reader and tonic's would accept does not pass."""

from __future__ import annotations

import faery
import numpy as np
import tonic

from speck_mtt.data.functional.aedat4 import PACKET_EVENTS, write_aedat4
from speck_mtt.data.functional.events import make_events


def test_our_aedat4_and_faerys_hold_the_same_events(tmp_path):
    rng = np.random.default_rng(1)
    n = PACKET_EVENTS + 1234  # two of our packets
    events = make_events(rng.integers(0, 128, n), rng.integers(0, 96, n), rng.integers(0, 2, n),
                         np.sort(rng.integers(0, 1_300_000, n)))
    ours, theirs = tmp_path / "ours.aedat4", tmp_path / "faery.aedat4"
    write_aedat4(ours, events, 128, 96)
    packed = np.zeros(n, faery.EVENTS_DTYPE)
    packed["t"], packed["x"], packed["y"], packed["on"] = events["t"], events["x"], events["y"], events["p"] == 1
    faery.events_stream_from_array(packed, dimensions=(128, 96)).to_file(theirs, compression=None)

    with faery.aedat.Decoder(ours) as decoder:  # faery reads our header: one event stream on a 128x96 sensor
        assert [(t.id, t.data_type, t.dimensions) for t in decoder.tracks()] == [(0, "events", (128, 96))]
    by_faery = faery.events_stream_from_file(ours).to_array()
    by_tonic = {path.name: tonic.io.read_aedat4(str(path)) for path in (ours, theirs)}
    for decoded in (by_faery, *by_tonic.values()):
        assert len(decoded) == n
        for ours_key, key in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "on")):
            np.testing.assert_array_equal(decoded[key].astype(np.int64), events[ours_key].astype(np.int64))
