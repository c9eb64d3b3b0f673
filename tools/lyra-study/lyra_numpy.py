"""Pure-numpy re-implementation of the three Lyra v2 (SoundStream) TFLite graphs.

The flatbuffers are parsed with the `tflite` schema bindings (tfl_load.py); everything that computes is
numpy.  Two ways to run:

  * GraphRunner: a small TFLite interpreter that executes each graph op by op, frame by frame, with the
    resource-variable state, following the arithmetic of TFLite's *reference* kernels (BUILTIN_REF):
    float ops accumulate in float32 in the reference loop order, int8 ops use the gemmlowp-style
    fixed-point requantisation (QuantizeMultiplier / SaturatingRoundingDoublingHighMul /
    RoundingDivideByPOT).  Options: float_exact (sequential float32 accumulation like the reference
    loops, else BLAS matmul), single_rounding (TFLITE_SINGLE_ROUNDING variant of the requantiser, which
    is NOT what LiteRT uses), float_requant (experiment: fp32 requantisation with round-half-even, roughly
    XNNPACK-like; not bit-exact to anything).

  * batch_encode / batch_decode (bottom of file): a hand-written layer sequence (see SPEC.md) that runs
    a whole clip at once (time as the sequence axis), used to check that the streaming graph is
    equivalent to plain causal convolutions.
"""
import math, sys
import numpy as np
from tfl_load import load

FX = '/work/shared/fixtures/lyra/'

# ----------------------------------------------------------------------------------------------
# fixed-point helpers (TFLite kernels/internal/quantization_util + common.h semantics)

def quantize_multiplier(m):
    """double -> (int32 significand, shift) with m ~= significand * 2^(shift-31)."""
    m = float(m)
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    qf = int(math.floor(abs(q) * 2.0**31 + 0.5)) * (1 if q > 0 else -1)  # std::round, half away
    if qf == 2**31:
        qf //= 2; shift += 1
    if shift < -31:
        shift, qf = 0, 0
    if shift > 30:
        shift, qf = 30, 2**31 - 1
    return qf, shift


def _srdhm(a, b):
    """SaturatingRoundingDoublingHighMul on int64 arrays holding int32 values."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    return np.where(s >= 0, s >> 31, -((-s) >> 31))  # C++ division truncates toward zero


def _rdpot(x, e):
    """RoundingDivideByPOT, e >= 0 (array or scalar)."""
    e = np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def mbqm(x, qm, shift, single_rounding=False):
    """MultiplyByQuantizedMultiplier(int32 x, int32 qm, int shift), vectorised (int64 arrays)."""
    x = np.asarray(x, np.int64); qm = np.asarray(qm, np.int64); shift = np.asarray(shift, np.int64)
    if single_rounding:
        total = 31 - shift
        return (x * qm + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(shift, 0); right = np.maximum(-shift, 0)
    return _rdpot(_srdhm(x * (np.int64(1) << left), qm), right)


def round_away(x):
    """std::round: half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)

# ----------------------------------------------------------------------------------------------
# float kernels with reference loop order

def _acc_seq(cols, w):
    """sum_k cols[..., k] * w[k, ...] accumulated sequentially in float32 (reference loop order).
    cols: [P, K] float32, w: [K, O] float32 -> [P, O]."""
    acc = np.zeros((cols.shape[0], w.shape[1]), np.float32)
    for k in range(cols.shape[1]):
        acc += cols[:, k:k + 1] * w[k:k + 1, :]   # separate multiply and add roundings (no FMA)
    return acc


def _patches(x, kh, stride, dil):
    """x [H, C] -> [Ho, kh, C] VALID patches along time."""
    H = x.shape[0]
    Ho = (H - dil * (kh - 1) - 1) // stride + 1
    idx = np.arange(Ho)[:, None] * stride + np.arange(kh)[None, :] * dil
    return x[idx]


class GraphRunner:
    def __init__(self, path, float_exact=True, single_rounding=False, float_requant=False):
        self.g = load(path)
        self.float_requant = float_requant   # experiment: XNNPACK-style fp32 requantisation (round half to even)
        self.float_exact = float_exact
        self.single_rounding = single_rounding
        self.vars = {}          # resource variables by shared name
        self.called_once = set()
        self.sig = {s['key']: s for s in self.g['signatures']}

    # -- helpers
    def _q(self, t):
        q = t['quant']
        return float(q['scale'][0]), int(q['zero_point'][0])

    def run_signature(self, key, **inputs):
        s = self.sig[key]
        sg = self.g['subgraphs'][s['subgraph']]
        feed = {s['inputs'][k]: np.asarray(v) for k, v in inputs.items()}
        vals = self.run_subgraph(sg['index'], feed)
        return {k: vals[i] for k, i in s['outputs'].items()}

    def run_subgraph(self, si, feed):
        sg = self.g['subgraphs'][si]
        T = sg['tensors']
        vals = dict(feed)
        for t in T:
            if t['data'] is not None:
                vals[t['index']] = t['data']
        for op in sg['ops']:
            ins = [vals.get(i) if i >= 0 else None for i in op['inputs']]
            outs = getattr(self, 'op_' + op['op'])(op, ins, [T[i] if i >= 0 else None for i in op['inputs']],
                                                   [T[i] for i in op['outputs']])
            for i, v in zip(op['outputs'], outs or []):
                vals[i] = v
        return vals

    # -- resource variables / control flow
    def op_CALL_ONCE(self, op, x, ti, to):
        sgi = op['options']['InitSubgraphIndex']
        if sgi not in self.called_once:
            self.called_once.add(sgi)
            self.run_subgraph(sgi, {})
        return []

    def op_VAR_HANDLE(self, op, x, ti, to):
        return [op['options']['SharedName'].decode()]

    def op_READ_VARIABLE(self, op, x, ti, to):
        return [self.vars[x[0]].copy()]

    def op_ASSIGN_VARIABLE(self, op, x, ti, to):
        self.vars[x[0]] = np.array(x[1], copy=True)
        return []

    # -- shape ops
    def op_RESHAPE(self, op, x, ti, to):
        return [np.reshape(x[0], to[0]['shape'])]

    def op_CONCATENATION(self, op, x, ti, to):
        return [np.concatenate(x, axis=op['options']['Axis'])]

    def op_SPLIT(self, op, x, ti, to):
        axis = int(x[0]); n = op['options']['NumSplits']
        return np.split(x[1], n, axis=axis)

    def op_PACK(self, op, x, ti, to):
        return [np.stack(x, axis=op['options']['Axis'])]

    def op_STRIDED_SLICE(self, op, x, ti, to):
        a, b, e, s = x[0], x[1], x[2], x[3]
        o = op['options']
        assert o['EllipsisMask'] == 0 and o['NewAxisMask'] == 0 and not o['Offset']
        sl = []
        for d in range(len(b)):
            if o['ShrinkAxisMask'] >> d & 1:
                i = int(b[d]); sl.append(i if i >= 0 else a.shape[d] + i); continue
            bb = None if o['BeginMask'] >> d & 1 else int(b[d])
            ee = None if o['EndMask'] >> d & 1 else int(e[d])
            sl.append(slice(bb, ee, int(s[d])))
        sl += [slice(None)] * (a.ndim - len(sl))
        return [np.ascontiguousarray(a[tuple(sl)])]

    def op_GATHER(self, op, x, ti, to):
        return [np.take(x[0], x[1], axis=op['options']['Axis'])]

    def op_ONE_HOT(self, op, x, ti, to):
        idx, depth, on, off = x
        assert op['options']['Axis'] == -1
        oh = np.where(np.arange(int(depth)) == idx[..., None], on, off).astype(np.float32)
        return [oh]

    def op_CAST(self, op, x, ti, to):
        m = {'FLOAT32': np.float32, 'INT32': np.int32}
        return [x[0].astype(m[to[0]['dtype']])]

    # -- elementwise float / int
    def _binary(self, x, ti, to, f):
        if to[0]['dtype'] == 'INT8':
            return [self._add_int8(x, ti, to)]
        return [f(x[0], x[1]).astype(x[0].dtype)]

    def op_ADD(self, op, x, ti, to):
        assert op['options'].get('FusedActivationFunction', 'NONE') == 'NONE'
        return self._binary(x, ti, to, lambda a, b: a + b)

    def op_SUB(self, op, x, ti, to):
        return [(x[0] - x[1]).astype(x[0].dtype)]

    def op_MUL(self, op, x, ti, to):
        return [(x[0] * x[1]).astype(np.float32)]

    def op_MAXIMUM(self, op, x, ti, to):
        return [np.maximum(x[0], x[1])]

    def op_LESS(self, op, x, ti, to):
        return [x[0] < x[1]]

    def op_NOT_EQUAL(self, op, x, ti, to):
        return [x[0] != x[1]]

    def op_SQUARED_DIFFERENCE(self, op, x, ti, to):
        d = (x[0] - x[1]).astype(np.float32)
        return [d * d]

    def op_SUM(self, op, x, ti, to):
        ax = int(x[1]); a = np.moveaxis(x[0], ax, -1)
        acc = np.zeros(a.shape[:-1], np.float32)
        for k in range(a.shape[-1]):     # reference reduce: sequential float32 accumulation
            acc += a[..., k]
        return [acc]

    def op_ARG_MIN(self, op, x, ti, to):
        return [np.argmin(x[0], axis=int(x[1])).astype(np.int32)]   # first minimum, like TFLite

    def op_ARG_MAX(self, op, x, ti, to):
        return [np.argmax(x[0], axis=int(x[1])).astype(np.int32)]

    # -- quantisation
    def op_QUANTIZE(self, op, x, ti, to):
        s, z = self._q(to[0])
        if self.float_requant:
            v = np.rint(x[0].astype(np.float32) * np.float32(1.0 / np.float32(s))) + z
        else:
            # reference_ops::AffineQuantize: TfLiteRound(val / static_cast<float>(scale)) -- float32
            # division, then std::round (half away from zero).  (float64 division is NOT the same: it
            # flips exact-.5 float32 quotients, seen once in radio_ja nq30.)
            v = round_away((x[0].astype(np.float32) / np.float32(s)).astype(np.float64)) + z
        return [np.clip(v, -128, 127).astype(np.int8)]

    def op_DEQUANTIZE(self, op, x, ti, to):
        s, z = self._q(ti[0])
        return [(np.float64(np.float32(s)) * (x[0].astype(np.int64) - z)).astype(np.float32)]

    def op_LEAKY_RELU(self, op, x, ti, to):
        alpha = np.float32(op['options']['Alpha'])
        if ti[0]['dtype'] == 'FLOAT32':
            v = x[0]
            return [np.where(v > 0, v, v * alpha).astype(np.float32)]
        si, zi = self._q(ti[0]); so, zo = self._q(to[0])
        # activations.cc LeakyReluPrepare: float arithmetic, then QuantizeMultiplier(double)
        ma, sa = quantize_multiplier(float(np.float32(np.float32(si) * alpha) / np.float32(so)))
        mi, sh = quantize_multiplier(float(np.float32(si) / np.float32(so)))
        v = x[0].astype(np.int64) - zi
        if self.float_requant:
            vf = v.astype(np.float32) * np.float32(si / so)
            return [np.clip(np.rint(np.where(v >= 0, vf, vf * alpha)) + zo, -128, 127).astype(np.int8)]
        out = np.where(v >= 0, mbqm(v, mi, sh, self.single_rounding), mbqm(v, ma, sa, self.single_rounding)) + zo
        return [np.clip(out, -128, 127).astype(np.int8)]

    def _add_int8(self, x, ti, to):
        s1, z1 = self._q(ti[0]); s2, z2 = self._q(ti[1]); so, zo = self._q(to[0])
        if self.float_requant:
            v = ((x[0].astype(np.float32) - z1) * np.float32(s1 / so) + (x[1].astype(np.float32) - z2) * np.float32(s2 / so))
            return np.clip(np.rint(v) + zo, -128, 127).astype(np.int8)
        left_shift = 20
        twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
        m1, sh1 = quantize_multiplier(float(np.float32(s1)) / twice_max)
        m2, sh2 = quantize_multiplier(float(np.float32(s2)) / twice_max)
        mo, sho = quantize_multiplier(twice_max / float(np.float32((1 << left_shift) * np.float32(so))))
        a = (x[0].astype(np.int64) - z1) * (1 << left_shift)
        b = (x[1].astype(np.int64) - z2) * (1 << left_shift)
        sr = self.single_rounding
        raw = mbqm(a, m1, sh1, sr) + mbqm(b, m2, sh2, sr)
        out = mbqm(raw, mo, sho, sr) + zo
        return np.clip(out, -128, 127).astype(np.int8)

    def _requant(self, acc, ti_in, ti_w, to_out, n):
        """int32 accumulator -> int8 output (fixed-point reference path, or fp32 experiment)."""
        so, zo = self._q(to_out)
        if self.float_requant:
            si, _ = self._q(ti_in); ws = ti_w['quant']['scale'].astype(np.float32)
            sc = (np.float32(si) * ws / np.float32(so)).astype(np.float32)
            v = np.rint(acc.astype(np.float32) * sc)
        else:
            mult, shift = self._channel_mults(ti_in, ti_w, to_out, n)
            v = mbqm(acc, mult, shift, self.single_rounding)
        return np.clip(v + zo, -128, 127).astype(np.int8)

    def _channel_mults(self, ti_in, ti_w, to_out, n):
        si, _ = self._q(ti_in); so, _ = self._q(to_out)
        ws = ti_w['quant']['scale']
        ws = np.broadcast_to(ws, (n,)) if len(ws) == 1 else ws
        ms = [quantize_multiplier(float(np.float32(si)) * float(np.float32(w)) / float(np.float32(so))) for w in ws]
        return np.array([m for m, _ in ms], np.int64), np.array([s for _, s in ms], np.int64)

    # -- convolutions.  All tensors are NHWC with N=W=1: we work on [H, C].
    def op_CONV_2D(self, op, x, ti, to):
        o = op['options']
        assert o['Padding'] == 'VALID' and o['StrideW'] == 1 and o['DilationWFactor'] == 1
        assert o['FusedActivationFunction'] == 'NONE'
        inp, w, b = x[0][0, :, 0, :], x[1], x[2]
        Cout, KH, KW, Cg = w.shape
        assert KW == 1
        G = inp.shape[1] // Cg; Og = Cout // G
        P = _patches(inp, KH, o['StrideH'], o['DilationHFactor'])  # [Ho, KH, Cin]
        Ho = P.shape[0]
        if ti[0]['dtype'] == 'FLOAT32':
            out = np.empty((Ho, Cout), np.float32)
            for gi in range(G):
                cols = P[:, :, gi * Cg:(gi + 1) * Cg].reshape(Ho, KH * Cg)      # (filter_y, in_ch) order
                wg = w[gi * Og:(gi + 1) * Og, :, 0, :].reshape(Og, KH * Cg).T
                acc = _acc_seq(cols, wg) if self.float_exact else cols @ wg
                out[:, gi * Og:(gi + 1) * Og] = acc + (b[gi * Og:(gi + 1) * Og] if b is not None else 0)
        else:
            si, zi = self._q(ti[0]); so, zo = self._q(to[0])
            acc = np.empty((Ho, Cout), np.int64)
            Pi = P.astype(np.int64) - zi
            for gi in range(G):
                cols = Pi[:, :, gi * Cg:(gi + 1) * Cg].reshape(Ho, KH * Cg)
                wg = w[gi * Og:(gi + 1) * Og, :, 0, :].reshape(Og, KH * Cg).T.astype(np.int64)
                acc[:, gi * Og:(gi + 1) * Og] = cols @ wg
            if b is not None:
                acc += b.astype(np.int64)
            out = self._requant(acc, ti[0], ti[1], to[0], Cout)
        return [out[None, :, None, :]]

    def op_DEPTHWISE_CONV_2D(self, op, x, ti, to):
        o = op['options']
        assert o['Padding'] == 'VALID' and o['DepthMultiplier'] == 1 and o['StrideH'] == 1
        assert o['FusedActivationFunction'] == 'NONE'
        inp, w, b = x[0][0, :, 0, :], x[1][0, :, 0, :], x[2]  # w [KH, C]
        KH = w.shape[0]
        P = _patches(inp, KH, 1, o['DilationHFactor'])  # [Ho, KH, C]
        if ti[0]['dtype'] == 'FLOAT32':
            if self.float_exact:
                acc = np.zeros((P.shape[0], P.shape[2]), np.float32)
                for k in range(KH):
                    acc += P[:, k, :] * w[k]
            else:
                acc = np.einsum('hkc,kc->hc', P, w)
            out = (acc + b).astype(np.float32)
        else:
            si, zi = self._q(ti[0]); so, zo = self._q(to[0])
            acc = ((P.astype(np.int64) - zi) * w.astype(np.int64)).sum(1) + b.astype(np.int64)
            out = self._requant(acc, ti[0], ti[1], to[0], w.shape[1])
        return [out[None, :, None, :]]

    def op_TRANSPOSE_CONV(self, op, x, ti, to):
        o = op['options']
        assert o['Padding'] == 'VALID' and o['StrideW'] == 1
        oshape, w, inp, b = x[0], x[1], x[2][0, :, 0, :], (x[3] if len(x) > 3 else None)
        Cout, KH, KW, Cin = w.shape
        s = o['StrideH']; H = inp.shape[0]; Ho = int(oshape[1])
        assert Ho == (H - 1) * s + KH
        wk = w[:, :, 0, :]  # [Cout, KH, Cin]
        if ti[2]['dtype'] == 'FLOAT32':
            out = np.zeros((Ho, Cout), np.float32)
            if self.float_exact:   # scatter loop order: in_y, in_ch, filter_y, out_ch
                wt = np.ascontiguousarray(wk.transpose(2, 1, 0))  # [Cin, KH, Cout]
                for i in range(H):
                    for c in range(Cin):
                        out[i * s:i * s + KH] += inp[i, c] * wt[c]
            else:
                contrib = np.einsum('hc,okc->hko', inp, wk)
                for i in range(H):
                    out[i * s:i * s + KH] += contrib[i]
            if b is not None:
                out += b
        else:
            si, zi = self._q(ti[2]); so, zo = self._q(to[0])
            acc = np.zeros((Ho, Cout), np.int64)
            contrib = np.einsum('hc,okc->hko', inp.astype(np.int64) - zi, wk.astype(np.int64))
            for i in range(H):
                acc[i * s:i * s + KH] += contrib[i]
            if b is not None:
                acc += b.astype(np.int64)
            out = self._requant(acc, ti[2], ti[1], to[0], Cout)
        return [out[None, :, None, :]]


# ----------------------------------------------------------------------------------------------
# codec wrapper (same call pattern as the LiteRT one in run_litert.py)

class NumpyCodec:
    def __init__(self, **kw):
        self.enc = GraphRunner(FX + 'soundstream_encoder.tflite', **kw)
        self.q = GraphRunner(FX + 'quantizer.tflite', **kw)
        self.gen = GraphRunner(FX + 'lyragan.tflite', **kw)

    def encode(self, frame):
        return self.enc.run_signature('serving_default', input_audio=frame.reshape(1, 320).astype(np.float32))['output_0'].reshape(64)

    def quantize(self, feat, nq):
        return self.q.run_signature('encode', input_frames=feat.reshape(1, 1, 64).astype(np.float32),
                                    num_quantizers=np.array(nq, np.int32))['output_0'].reshape(46)

    def dequantize(self, codes):
        return self.q.run_signature('decode', encoding_indices=codes.reshape(46, 1, 1).astype(np.int32))['output_0'].reshape(64)

    def decode(self, feat):
        return self.gen.run_signature('serving_default', input_audio=feat.reshape(1, 1, 64).astype(np.float32))['output_0'].reshape(320)


def read_wav(path):
    import wave
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), '<i2')
    return x.astype(np.float32) / 32768.0


def snr(ref, x):
    ref = np.asarray(ref, np.float64); x = np.asarray(x, np.float64)
    e = np.sum((ref - x) ** 2)
    return float('inf') if e == 0 else 10 * np.log10(np.sum(ref ** 2) / e)


# ----------------------------------------------------------------------------------------------
# Whole-clip ("batch over time") implementation.  Same kernels, hand-wired layer sequence (SPEC.md):
# every READ_VARIABLE/CONCATENATION/STRIDED_SLICE/ASSIGN_VARIABLE group becomes a causal left pad with
# the state length (zeros; for int8 tensors the float zero quantises to the zero point), and every
# transposed conv becomes "per-frame block + overlap-add of the previous block's tail".

class _Wired:
    def __init__(self, path, **kw):
        self.r = GraphRunner(path, **kw)
        self.sg = self.r.g['subgraphs'][0]
        self.T = self.sg['tensors']

    def run(self, i, *dyn):
        """Run op i of the main subgraph; non-constant inputs are taken from dyn, in order."""
        op = self.sg['ops'][i]
        dyn = list(dyn); ins = []
        for j in op['inputs']:
            t = self.T[j] if j >= 0 else None
            ins.append(None if t is None else (t['data'] if t['data'] is not None else dyn.pop(0)))
        assert not dyn
        out = getattr(self.r, 'op_' + op['op'])(op, ins, [self.T[j] if j >= 0 else None for j in op['inputs']],
                                                 [self.T[j] for j in op['outputs']])
        return out[0] if len(out) == 1 else out

    def const(self, i, k):
        return self.T[self.sg['ops'][i]['inputs'][k]]['data']

    def tconv_blocks(self, i, x, frames):
        """TRANSPOSE_CONV op i applied independently to each frame's block of input samples.
        x [1, frames*h, 1, Cin] -> [frames, Ho, Cout] (float32 or int8, as the op outputs)."""
        op = self.sg['ops'][i]
        w = self.const(i, 1)[:, :, 0, :]; b = self.const(i, 3)
        Cout, KH, Cin = w.shape; s = op['options']['StrideH']
        xb = x[0, :, 0, :].reshape(frames, -1, Cin); h = xb.shape[1]; Ho = (h - 1) * s + KH
        ti = self.T[op['inputs'][2]]; to = self.T[op['outputs'][0]]
        if ti['dtype'] == 'FLOAT32':
            out = np.zeros((frames, Ho, Cout), np.float32)
            if self.r.float_exact:      # reference scatter order: in_y, in_ch
                wt = np.ascontiguousarray(w.transpose(2, 1, 0))  # [Cin, KH, Cout]
                for k in range(h):
                    for c in range(Cin):
                        out[:, k * s:k * s + KH] += xb[:, k, c, None, None] * wt[c]
            else:
                contrib = np.einsum('nhc,okc->nhko', xb, w).astype(np.float32)
                for k in range(h):
                    out[:, k * s:k * s + KH] += contrib[:, k]
            return out + b
        si, zi = self.r._q(ti); so, zo = self.r._q(to)
        contrib = np.einsum('nhc,okc->nhko', xb.astype(np.int64) - zi, w.astype(np.int64))
        acc = np.zeros((frames, Ho, Cout), np.int64)
        for k in range(h):
            acc[:, k * s:k * s + KH] += contrib[:, k]
        acc += b.astype(np.int64)
        return self.r._requant(acc, ti, self.T[op['inputs'][1]], to, Cout)


def _pad(x, n):
    return np.concatenate([np.zeros((1, n) + x.shape[2:], x.dtype), x], axis=1)


def _overlap_add(blocks, emit, bias):
    """blocks [N, Ho, C] float -> [1, N*emit, 1, C]: frame n emits blocks[n][:emit] plus the tail
    (blocks[n-1][emit:] - bias) of the previous frame on its first Ho-emit samples (graph's ADD/SUB)."""
    N, Ho, C = blocks.shape; L = Ho - emit
    tails = blocks[:, emit:, :] - bias                        # state written at frame n
    out = blocks[:, :emit, :].copy()
    out[1:, :L, :] += tails[:-1]
    return out.reshape(1, N * emit, 1, C)


class BatchEncoder(_Wired):
    # residual units: (act op, state len, dw, pw, act, conv_b, add)
    def __init__(self, path=FX + 'soundstream_encoder.tflite', **kw):
        super().__init__(path, **kw)

    def _float_unit(self, h, a, pad, dw, pw, act, cb, add):
        x = self.run(a, h); x = self.run(dw, _pad(x, pad)); x = self.run(pw, x); x = self.run(act, x)
        return self.run(add, self.run(cb, x), h)

    def __call__(self, audio):
        N = len(audio) // 320
        x = audio[:N * 320].astype(np.float32).reshape(1, -1, 1, 1)
        e = self.run(29, _pad(x, 48))                           # first_layerconv k64 s16 1->64
        h = self._float_unit(e, 30, 2, 34, 35, 36, 37, 38)      # encoder_0, dilations 1,3,9
        h = self._float_unit(h, 39, 6, 43, 44, 45, 46, 47)
        h = self._float_unit(h, 48, 18, 52, 53, 54, 55, 56)
        h = self.run(61, _pad(self.run(57, h), 5))              # k10 s5 64->128
        h = self._float_unit(h, 62, 2, 66, 67, 68, 69, 70)      # encoder_1
        h = self._float_unit(h, 71, 6, 75, 76, 77, 78, 79)
        h = self._float_unit(h, 80, 18, 84, 85, 86, 87, 88)
        h = self.run(93, _pad(self.run(89, h), 2))              # k4 s2 128->256 (groups 2)
        # encoder_2 unit 0: float dw+pw, int8 act + conv_b, float add
        x = self.run(98, _pad(self.run(94, h), 2)); x = self.run(100, x)
        x = self.run(103, self.run(102, self.run(101, x)))
        hi = self.run(106, self.run(105, self.run(104, x), h))  # quantise the residual sum
        for (a, dq, pad, q, dw, pw, act, cb, add) in ((107, 108, 6, 111, 115, 116, 117, 118, 119),
                                                      (120, 121, 18, 124, 128, 129, 130, 131, 132)):
            x = self.run(q, _pad(self.run(dq, self.run(a, hi)), pad))   # int8 causal pad (zeros -> zp)
            x = self.run(cb, self.run(act, self.run(pw, self.run(dw, x))))
            hi = self.run(add, x, hi)                                   # int8 ADD
        x = self.run(137, _pad(self.run(134, self.run(133, hi)), 2))
        h = self.run(141, x)                                           # int8 k4 s2 256->512 (groups 4)
        x = self.run(145, _pad(self.run(143, self.run(142, h)), 2))
        o = self.run(149, x)                                           # int8 k3 512->64 (groups 4)
        return self.run(151, o.reshape(1, N, 64))[0]                  # [N, 64]


class BatchGenerator(_Wired):
    def __init__(self, path=FX + 'lyragan.tflite', **kw):
        super().__init__(path, **kw)

    def _float_unit(self, h, a, pad, dw, pw, act, cb, add):
        x = self.run(a, h); x = self.run(dw, _pad(x, pad)); x = self.run(pw, x); x = self.run(act, x)
        return self.run(add, self.run(cb, x), h)

    def _tconv_group(self, i_tc, i_dq, i_sub, x, N, emit):
        blk = self.tconv_blocks(i_tc, x, N)
        if i_dq is not None:
            blk = self.run(i_dq, blk)
        return _overlap_add(blk, emit, self.const(i_sub, 1))

    def __call__(self, feats):
        N = feats.shape[0]
        f = feats.astype(np.float32).reshape(1, N, 1, 64)
        h = self.run(25, self.run(24, _pad(f, 2)))               # bottleneck k3 64->512 (groups 4), act
        hi = self.run(36, h)                                      # quantise
        gs = np.split(hi, 4, axis=-1)                             # SPLIT op 37
        y = np.concatenate([self._tconv_group(t, d, s, g, N, 2) for g, (t, d, s) in
                            zip(gs, ((43, 44, 47), (52, 53, 56), (61, 62, 65), (70, 71, 74)))], axis=-1)
        # quant_decoder_0 residual units (int8), first one with float add
        x = self.run(82, _pad(self.run(80, self.run(79, self.run(78, y))), 2))
        x = self.run(89, self.run(88, self.run(87, self.run(86, x))))
        hi = self.run(92, self.run(91, self.run(90, x), y))
        for (a, dq, pad, q, dw, pw, act, cb, add) in ((93, 94, 6, 96, 100, 101, 102, 103, 104),
                                                      (105, 106, 18, 108, 112, 113, 114, 115, 116)):
            x = self.run(q, _pad(self.run(dq, self.run(a, hi)), pad))
            x = self.run(cb, self.run(act, self.run(pw, self.run(dw, x))))
            hi = self.run(add, x, hi)
        gs = np.split(self.run(117, hi), 2, axis=-1)             # act, SPLIT op 118
        y = np.concatenate([self._tconv_group(t, d, s, g, N, 4) for g, (t, d, s) in
                            zip(gs, ((121, 122, 125), (130, 131, 134)))], axis=-1)
        h = self._float_unit(y, 138, 2, 142, 143, 144, 145, 146)  # decoder_1 (float)
        h = self._float_unit(h, 147, 6, 151, 152, 153, 154, 155)
        h = self._float_unit(h, 156, 18, 160, 161, 162, 163, 164)
        y = self._tconv_group(166, None, 169, self.run(165, h), N, 20)   # k10 s5 128->64
        h = self._float_unit(y, 172, 2, 176, 177, 178, 179, 180)  # decoder_2 (float)
        h = self._float_unit(h, 181, 6, 185, 186, 187, 188, 189)
        h = self._float_unit(h, 190, 18, 194, 195, 196, 197, 198)
        y = self._tconv_group(200, None, 203, self.run(199, h), N, 320)  # k64 s16 64->1
        return y.reshape(-1)


def batch_quantize(codec_q, feats, nq):
    """Residual VQ of all frames at once, same float arithmetic as the graph (see SPEC.md)."""
    return np.stack([codec_q(f, nq) for f in feats], 1)
