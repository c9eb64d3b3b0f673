"""LiteRT speed: frame-by-frame encode (encoder + quantizer.encode) and decode (quantizer.decode + generator)
of a 10 s clip (sample1 tiled to 500 frames).  Usage: bench_litert.py [threads...]; prints real-time factors."""
import sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
FX = '/work/shared/fixtures/lyra/'
sys.path.insert(0, '/work/lyra-study'); from run_litert import read_wav
x = np.tile(read_wav(FX + 'sample1_16kHz.wav'), 4)[:500 * 320].astype(np.float32)
frames = x.reshape(500, 1, 320); secs = 500 * 0.02
def mk(m, threads, ref):
    kw = dict(model_path=FX + m + '.tflite', num_threads=threads)
    if ref: kw['experimental_op_resolver_type'] = OpResolverType.BUILTIN_REF
    return Interpreter(**kw)
def bench(threads, ref=False, nq=46, reps=3):
    best_e = best_d = 1e9
    for r in range(reps):
        enc = mk('soundstream_encoder', threads, ref).get_signature_runner('serving_default')
        q = mk('quantizer', threads, ref); qe = q.get_signature_runner('encode'); qd = q.get_signature_runner('decode')
        gen = mk('lyragan', threads, ref).get_signature_runner('serving_default')
        nqa = np.array(nq, np.int32)
        enc(input_audio=frames[0]); gen(input_audio=np.zeros((1, 1, 64), np.float32))  # warm-up (runs CALL_ONCE)
        t = time.perf_counter(); codes = []
        for f in frames:
            feat = enc(input_audio=f)['output_0']
            codes.append(qe(input_frames=feat, num_quantizers=nqa)['output_0'])
        te = time.perf_counter() - t
        t = time.perf_counter()
        for c in codes:
            gen(input_audio=qd(encoding_indices=c)['output_0'])
        td = time.perf_counter() - t
        best_e = min(best_e, te); best_d = min(best_d, td)
    print(f'threads={threads} kernels={"BUILTIN_REF" if ref else "default(XNNPACK)"} nq={nq}: '
          f'encode {best_e*1e3/500:.3f} ms/frame RTF {secs/best_e:.1f}x | decode {best_d*1e3/500:.3f} ms/frame RTF {secs/best_d:.1f}x | both RTF {secs/(best_e+best_d):.1f}x', flush=True)
if __name__ == '__main__':
    for th in [int(a) for a in sys.argv[1:]] or [1, 2]:
        bench(th)
    if 'ref' in sys.argv or True:
        bench(1, ref=True, reps=1)
