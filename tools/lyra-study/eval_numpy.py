"""Measure lyra_numpy against the fixtures (all cases)."""
import sys, time, json, numpy as np, lyra_numpy as L
FX = L.FX
cases = sys.argv[1].split(',') if len(sys.argv) > 1 else ['sample1_16kHz', 'sample2_16kHz', 'libri_16k', 'radio_ja_16k', 'music_16k']
kw = dict(float_exact=('fast' not in sys.argv))
res = {}
for name in cases:
    x = L.read_wav(FX + name + '.wav'); N = len(x) // 320
    c = L.NumpyCodec(**kw)
    t = time.time()
    f = np.stack([c.encode(x[i*320:(i+1)*320]) for i in range(N)]); te = time.time() - t
    R = {}
    for tag, lab in (('', 'default'), ('.refkernels', 'ref')):
        rf = np.load(FX + name + tag + '.features.npy')
        R[f'features_snr_vs_{lab}'] = L.snr(rf, f)
        R[f'features_exact_vs_{lab}'] = bool(np.array_equal(rf, f))
    for nq in (16, 30, 46):
        codes = np.stack([c.quantize(v, nq) for v in f], 1)
        for tag, lab in (('', 'default'), ('.refkernels', 'ref')):
            rc = np.load(FX + name + tag + f'.nq{nq}.codes.npy')
            R[f'nq{nq}_codes_equal_vs_{lab}'] = float(np.mean(codes[:nq] == rc[:nq]))
            R[f'nq{nq}_q0_equal_vs_{lab}'] = float(np.mean(codes[0] == rc[0]))
        # VQ alone from the reference features
        for tag, lab in (('', 'default'), ('.refkernels', 'ref')):
            rf = np.load(FX + name + tag + '.features.npy'); rc = np.load(FX + name + tag + f'.nq{nq}.codes.npy')
            c2 = np.stack([c.quantize(v, nq) for v in rf], 1)
            R[f'nq{nq}_vq_from_{lab}_features_codes_equal'] = float(np.mean(c2 == rc))
        rc = np.load(FX + name + f'.nq{nq}.codes.npy')
        dq = np.stack([c.dequantize(rc[:, i]) for i in range(N)])
        rdq = np.load(FX + name + f'.nq{nq}.dequantized.npy')
        R[f'nq{nq}_dequant_snr'] = L.snr(rdq, dq); R[f'nq{nq}_dequant_exact'] = bool(np.array_equal(rdq, dq))
        for tag, lab in (('', 'default'), ('.refkernels', 'ref')):
            rc = np.load(FX + name + tag + f'.nq{nq}.codes.npy')
            g = L.NumpyCodec(**kw)
            t = time.time()
            dec = np.concatenate([g.decode(g.dequantize(rc[:, i])) for i in range(N)]); td = time.time() - t
            rd = np.load(FX + name + tag + f'.nq{nq}.decoded.npy')
            R[f'nq{nq}_decoded_snr_vs_{lab}'] = L.snr(rd, dec); R[f'nq{nq}_decoded_exact_vs_{lab}'] = bool(np.array_equal(rd, dec))
            R[f'nq{nq}_decoded_maxabs_vs_{lab}'] = float(np.abs(rd - dec).max())
    R['numpy_encode_s_per_frame'] = te / N; R['numpy_decode_s_per_frame'] = td / N
    res[name] = R
    print(name, json.dumps(R, indent=0), flush=True)
json.dump(res, open('/work/lyra-study/eval_numpy_results%s.json' % ('_fast' if 'fast' in sys.argv else '_exact'), 'w'), indent=1)
