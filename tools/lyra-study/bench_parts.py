"""Per-model LiteRT timing (best of 5 passes over 500 frames)."""
import sys, time, numpy as np
from ai_edge_litert.interpreter import Interpreter
FX = '/work/shared/fixtures/lyra/'
sys.path.insert(0, '/work/lyra-study'); from run_litert import read_wav
x = np.tile(read_wav(FX + 'sample1_16kHz.wav'), 4)[:500 * 320].astype(np.float32).reshape(500, 1, 320)
for th in (1, 2):
    enc = Interpreter(model_path=FX + 'soundstream_encoder.tflite', num_threads=th).get_signature_runner('serving_default')
    q = Interpreter(model_path=FX + 'quantizer.tflite', num_threads=th); qe = q.get_signature_runner('encode'); qd = q.get_signature_runner('decode')
    gen = Interpreter(model_path=FX + 'lyragan.tflite', num_threads=th).get_signature_runner('serving_default')
    feats = [enc(input_audio=f)['output_0'] for f in x]
    codes = [qe(input_frames=f, num_quantizers=np.array(46, np.int32))['output_0'] for f in feats]
    vecs = [qd(encoding_indices=c)['output_0'] for c in codes]
    res = {}
    for lab, fn, data in (('encoder', lambda a: enc(input_audio=a), x), ('quantizer.encode', lambda a: qe(input_frames=a, num_quantizers=np.array(46, np.int32)), feats),
                          ('quantizer.decode', lambda a: qd(encoding_indices=a), codes), ('generator', lambda a: gen(input_audio=a), vecs)):
        best = 1e9
        for r in range(5):
            t = time.perf_counter()
            for a in data: fn(a)
            best = min(best, time.perf_counter() - t)
        res[lab] = best / 500 * 1e3
    print(f'threads={th}: ' + ', '.join(f'{k} {v:.3f} ms/frame' for k, v in res.items()), flush=True)
