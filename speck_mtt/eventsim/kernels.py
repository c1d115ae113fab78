"""Compiled per-event inner loops of the simulator (numba).

The chip neuron rule (docs/design.md#neurons) lives in `chip_neuron` and nowhere else: the compiled kernels
inline it, the pure-Python reference calls its `.py_func`.

A network reaches these kernels as flat arrays (see network.py, also for their types): `lay`
holds one row of int64 fields per layer (the F_* column indices below), `weights` all kernels
concatenated, each in (C_in, kH, kW, C_out) order, `th_hi`/`th_lo` the thresholds, `vb` each
layer's state range (low, high: the 16-bit register in that layer's units) and `dptr`/`didx` the
destination lists in CSR form. Per layer and sample the kernels count, in `stats` columns S_*: SynOps,
floor hits (the clamp at the floor raised the state: theta_low, or the register's -32,768 where
the floor lies beyond it), held spikes (the state stayed at or above theta_high after the one
spike an event may cause: a time-stepped multistep IF would have fired more), and top
saturations (the sum passed the register's top, +32,767, and was clipped). All neuron states of
one sample sit in one flat vector, each layer's in (H, W, C) order: channels innermost, so one kernel position updates contiguous memory.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# columns of the per-layer table `lay`
(F_CIN, F_HIN, F_WIN, F_COUT, F_HOUT, F_WOUT, F_KH, F_KW, F_SY, F_SX, F_PY, F_PX,
 F_POOLY, F_POOLX, F_WOFF, F_SOFF, F_COFF) = range(17)
N_FIELDS = 17

# columns of the per-layer counters `stats`
S_SYNOPS, S_FLOOR, S_HELD, S_TOP_SATURATED = range(4)
N_STATS = 4

STATE_MIN = -(2**15)  # a Speck neuron state is a 16-bit register
STATE_MAX = 2**15 - 1

_INITIAL_CAPACITY = 256


@njit(inline="always", cache=True)
def chip_neuron(v, w, theta_high, theta_low, v_min, v_max, quiet=False):
    """One synaptic update of a Speck neuron: (new state, spiked, floored, held, saturated).

    v += w, saturating at the register's top v_max ("saturated": charge lost upwards); at or
    above theta_high emit ONE spike and subtract theta_high (a state still above threshold waits
    for the next event: "held"); then clamp at the floor ("floored"): theta_low, or the register's
    bottom v_min where theta_low lies beyond it (a deep floor clipped to the 16-bit state), so a
    sum below the register counts as the floor hit it is, never as a saturation. Written without
    branches on the state so the compiled kernels update a run of channels with SIMD instructions.
    `quiet` (a constant) is for callers that proved the sum stays in range and below 2 theta_high
    (see `_quiet_layers`): the top clamp and the held check then compile away, their flags are False.
    """
    v = v + w
    saturated = False
    if not quiet:
        saturated = v > v_max
        v = min(v, v_max)
    spiked = v >= theta_high
    if spiked:
        v = v - theta_high
    held = False
    if not quiet:
        held = spiked & (v >= theta_high)
    floor = max(theta_low, v_min)
    floored = v < floor
    v = max(v, floor)
    return v, spiked, floored, held, saturated


@njit(cache=True)
def _grown(pend, need):
    """The pending buffer with its capacity doubled until every layer can hold `need` spikes."""
    cap = pend.shape[1]
    while cap < need:
        cap *= 2
    bigger = np.empty((pend.shape[0], cap, 3), np.int32)
    bigger[:, :pend.shape[1]] = pend
    return bigger


@njit(cache=True, inline="always")
def _update_run(state, sb, weights, wb, fired, fb, n, theta_high, theta_low, v_min, v_max, quiet):
    """One kernel position: n channels' states from state[sb] take the weights from weights[wb],
    fired[fb:] notes who spiked; returns whether any did (an OR: cheaper in the loop than a count)
    and the tallies of floor hits, held spikes and top saturations, kept in the state's own type
    (exact: at most C_out each) so the loop holds one lane width and vectorizes. Offsets are
    unsigned: no negative-index wraparound in the SIMD loop."""
    zero = v_max - v_max
    here = False
    floors = zero
    helds = zero
    sats = zero
    for co in range(np.uint64(n)):
        v, spiked, floored, held, saturated = chip_neuron(state[sb + co], weights[wb + co], theta_high, theta_low,
                                                          v_min, v_max, quiet)
        state[sb + co] = v
        fired[fb + co] = spiked
        here |= spiked
        floors += floored
        helds += held
        sats += saturated
    return here, floors, helds, sats


@njit(cache=True)
def _quiet_layers(lay, weights, th_hi, th_lo, vb, state):
    """Per layer: can no update from this state on saturate or hold a spike? True when every sum
    state + w stays in the register range and below 2 theta_high for states in [lo, hi], where
    lo = min(state, theta_low) and hi = max(state, theta_high, theta_low): an update then leaves
    the state in [lo, hi] again (below theta_high after a spike, never under theta_low), so the
    bound holds for the whole run. Exact in float64 too: the sums are monotone in their terms and
    v - theta_high for theta_high <= v < 2 theta_high is exact (Sterbenz)."""
    quiet = np.zeros(lay.shape[0], np.bool_)
    for l in range(lay.shape[0]):
        n_w = lay[l, F_CIN] * lay[l, F_KH] * lay[l, F_KW] * lay[l, F_COUT]
        w = weights[lay[l, F_WOFF]:lay[l, F_WOFF] + n_w]
        s = state[lay[l, F_SOFF]:lay[l, F_SOFF] + lay[l, F_COUT] * lay[l, F_HOUT] * lay[l, F_WOUT]]
        if w.size == 0 or s.size == 0:
            continue
        hi = max(s.max(), th_hi[l], th_lo[l])
        lo = min(s.min(), th_lo[l])
        top = hi + w.max()
        quiet[l] = th_hi[l] > 0 and top <= vb[l, 1] and top < th_hi[l] + th_hi[l] and lo + w.min() >= vb[l, 0]
    return quiet


@intrinsic
def _prefetch(typingctx, arr, index):
    """Ask the CPU to load the cache line holding arr[index] (LLVM's prefetch; no effect on
    results): VGGSNN's 9 MB of weights do not fit a core's own cache, and an event reads its
    input channel's C_out * kH * kW of them."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        byte_ptr = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, index), codegen


@njit(cache=True)
def _scratch(lay):
    k = max(lay[:, F_KH].max(), lay[:, F_KW].max())
    fan = (lay[:, F_COUT] * lay[:, F_KH] * lay[:, F_KW]).max()
    fired = np.zeros(-(-fan // 8) * 8, np.bool_)
    return (np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64), np.empty(k, np.int64), fired,
            fired.view(np.uint64), np.zeros(k * k, np.bool_), np.empty(fan, np.int64))


@njit(cache=True, fastmath={"reassoc"})
def _simulate(xs, ys, ps, lay, weights, th_hi, th_lo, vb, dptr, didx, state, counts, stats, trace, per_event):
    """run_events (per_event) or run_layerwise. Each event (ci, y, x) into layer l updates every
    neuron its kernel touches; its spikes, in (channel, row, column) order, are pooled and appended
    to the pending input list of every destination. One loop nest on purpose: handing its twenty
    arrays to a helper per event cost an atomic reference-count update per array on the way in and
    out, a quarter of the run time (measured on VGGSNN)."""
    n_layers = lay.shape[0]
    n_in = xs.shape[0]
    pend = np.empty((n_layers, _INITIAL_CAPACITY if per_event else max(_INITIAL_CAPACITY, n_in), 3), np.int32)
    npend = np.zeros(n_layers, np.int64)
    oy_buf, ky_buf, ox_buf, kx_buf, fired, fired_words, pos_fired, keys = _scratch(lay)
    quiet = _quiet_layers(lay, weights, th_hi, th_lo, vb, state)
    start = 0
    while start < n_in:
        stop = start + 1 if per_event else n_in
        for l in range(n_layers):  # layers in index order, each in arrival order
            c_out, h_out, w_out = lay[l, F_COUT], lay[l, F_HOUT], lay[l, F_WOUT]
            kh, kw, sy, sx = lay[l, F_KH], lay[l, F_KW], lay[l, F_SY], lay[l, F_SX]
            theta_high, theta_low, v_min, v_max = th_hi[l], th_lo[l], vb[l, 0], vb[l, 1]
            fan = c_out * kh * kw  # the most spikes one event can cause
            n_ev = stop - start if l == 0 else npend[l]
            for e in range(n_ev):
                if l == 0:
                    ci, y, x = ps[start + e], ys[start + e], xs[start + e]
                else:
                    ci, y, x = pend[l, e, 0], pend[l, e, 1], pend[l, e, 2]
                if e + 1 < n_ev:  # the next event's weights (fan values) load while this one computes
                    w_next = lay[l, F_WOFF] + (ps[start + e + 1] if l == 0 else pend[l, e + 1, 0]) * fan
                    for a in range(w_next, w_next + fan, 64 // weights.itemsize):
                        _prefetch(weights, a)
                for d_k in range(dptr[l], dptr[l + 1]):
                    if npend[didx[d_k]] + fan > pend.shape[1]:
                        pend = _grown(pend, npend[didx[d_k]] + fan)
                # output rows touched, ascending (kernel row descending)
                n_oy = 0
                for ky in range(kh - 1, -1, -1):
                    t = y + lay[l, F_PY] - ky
                    if t < 0:
                        continue
                    oy = t
                    if sy != 1:  # integer division is slow: only for strided layers
                        if t % sy != 0:
                            continue
                        oy = t // sy
                    if oy >= h_out:
                        break
                    oy_buf[n_oy] = oy
                    ky_buf[n_oy] = ky
                    n_oy += 1
                n_ox = 0
                for kx in range(kw - 1, -1, -1):
                    t = x + lay[l, F_PX] - kx
                    if t < 0:
                        continue
                    ox = t
                    if sx != 1:
                        if t % sx != 0:
                            continue
                        ox = t // sx
                    if ox >= w_out:
                        break
                    ox_buf[n_ox] = ox
                    kx_buf[n_ox] = kx
                    n_ox += 1
                n_pos = n_oy * n_ox
                if n_pos == 0:
                    continue
                stats[l, S_SYNOPS] += c_out * n_pos
                # the updates themselves are independent: run them channel-innermost (contiguous,
                # SIMD), note who spiked, then emit the spikes in (channel, row, column) order
                woff = lay[l, F_WOFF] + ci * fan
                any_fired = False
                n_floor = n_held = n_sat = 0
                for i in range(n_oy):
                    wrow = woff + ky_buf[i] * kw * c_out
                    srow = lay[l, F_SOFF] + oy_buf[i] * w_out * c_out
                    for j in range(n_ox):
                        sb = np.uint64(srow + ox_buf[j] * c_out)
                        wb = np.uint64(wrow + kx_buf[j] * c_out)
                        fb = np.uint64((i * n_ox + j) * c_out)
                        if quiet[l]:
                            here, floors, helds, sats = _update_run(state, sb, weights, wb, fired, fb, c_out,
                                                                    theta_high, theta_low, v_min, v_max, True)
                        else:
                            here, floors, helds, sats = _update_run(state, sb, weights, wb, fired, fb, c_out,
                                                                    theta_high, theta_low, v_min, v_max, False)
                        pos_fired[i * n_ox + j] = here
                        any_fired |= here
                        n_floor += int(floors)
                        n_held += int(helds)
                        n_sat += int(sats)
                stats[l, S_FLOOR] += n_floor
                stats[l, S_HELD] += n_held
                stats[l, S_TOP_SATURATED] += n_sat
                if not any_fired:
                    continue
                # gather the spikes position by position (contiguous flags, only where something
                # fired) as keys channel * n_pos + position, ascending in (channel, row, column)
                m = 0
                active = 0
                for p in range(n_pos):
                    if not pos_fired[p]:
                        continue
                    active += 1
                    base = p * c_out
                    step = 8 if c_out % 8 == 0 else c_out  # 8 flags at a time as one word: most are 0
                    for co0 in range(0, c_out, step):
                        if step == 8 and fired_words[(base + co0) >> 3] == 0:
                            continue
                        for co in range(co0, co0 + step):
                            if fired[base + co]:
                                keys[m] = co * n_pos + p
                                m += 1
                if active > 1:
                    keys[:m].sort()
                for k in range(m):
                    co = keys[k] // n_pos
                    p = keys[k] - co * n_pos
                    i = p // n_ox
                    counts[lay[l, F_COFF] + co] += 1
                    py = oy_buf[i] // lay[l, F_POOLY]
                    px = ox_buf[p - i * n_ox] // lay[l, F_POOLX]
                    for d_k in range(dptr[l], dptr[l + 1]):
                        d = didx[d_k]
                        if py >= lay[d, F_HIN] or px >= lay[d, F_WIN]:
                            continue  # sum pooling floors the map: border rows/columns are dropped
                        pend[d, npend[d], 0] = co
                        pend[d, npend[d], 1] = py
                        pend[d, npend[d], 2] = px
                        npend[d] += 1
            if l > 0:
                npend[l] = 0
        if trace.shape[0] > 0:  # once per input event, and only when asked: the per-layer SynOps so far
            for l in range(n_layers):
                trace[start, l] = stats[l, S_SYNOPS]
        start = stop


@njit(cache=True)
def run_events(xs, ys, ps, lay, weights, th_hi, th_lo, vb, dptr, didx, state, counts, stats, trace):
    """Event by event: each input event goes to layer 0 and every spike it causes is delivered
    downstream (layers in index order, each in arrival order) before the next input event.
    trace: (n_events, n_layers) int64 to receive each layer's SynOps count after every input
    event (what the chip's cores must do by that event's time), or an empty (0, n_layers) array."""
    _simulate(xs, ys, ps, lay, weights, th_hi, th_lo, vb, dptr, didx, state, counts, stats, trace, True)


@njit(cache=True)
def run_layerwise(xs, ys, ps, lay, weights, th_hi, th_lo, vb, dptr, didx, state, counts, stats):
    """Layer by layer: layer 0 takes the whole input stream, then each layer takes the whole
    ordered output of its sources. Equals run_events for feed-forward nets (tested)."""
    _simulate(xs, ys, ps, lay, weights, th_hi, th_lo, vb, dptr, didx, state, counts, stats,
              np.zeros((0, lay.shape[0]), np.int64), False)


@njit(cache=True, parallel=True, nogil=True, fastmath={"reassoc"})
def run_batch(xs, ys, ps, offsets, lay, weights, th_hi, th_lo, vb, dptr, didx, n_state, counts, stats,
              membranes, out_layer, trace):
    """Many samples at once, one per thread (prange); sample i is events offsets[i]:offsets[i+1].

    Writes per-layer per-channel spike counts, per-layer counters (S_*) and the output layer's final
    membranes (summed over its map per channel) into row i of the result arrays; trace (rows
    aligned with the events, or empty) as in run_events, each sample's counts from zero.
    """
    n = offsets.shape[0] - 1
    c_out = lay[out_layer, F_COUT]
    hw = lay[out_layer, F_HOUT] * lay[out_layer, F_WOUT]
    soff = lay[out_layer, F_SOFF]
    for i in prange(n):
        state = np.zeros(n_state, vb.dtype)  # the state type is the register range's
        a = offsets[i]
        b = offsets[i + 1]
        run_events(xs[a:b], ys[a:b], ps[a:b], lay, weights, th_hi, th_lo, vb, dptr, didx, state,
                   counts[i], stats[i], trace[a:b] if trace.shape[0] > 0 else trace)
        for c in range(c_out):
            acc = 0.0
            for k in range(hw):
                acc += state[soff + k * c_out + c]
            membranes[i, c] = acc
