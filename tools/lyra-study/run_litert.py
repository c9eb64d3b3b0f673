"""Run the three Lyra v2 TFLite models frame by frame with LiteRT and compare to fixtures."""
import sys, wave, numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
FX = '/work/shared/fixtures/lyra/'

def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), '<i2')
    return x.astype(np.float32) / 32768.0

def snr(ref, x):
    ref = np.asarray(ref, np.float64); x = np.asarray(x, np.float64)
    return 10*np.log10(np.sum(ref**2)/max(np.sum((ref-x)**2), 1e-30))

def make(model, ref=False, threads=None):
    kw = dict(model_path=FX+model+'.tflite', num_threads=threads)
    if ref: kw['experimental_op_resolver_type'] = OpResolverType.BUILTIN_REF
    return Interpreter(**kw)

class Codec:
    def __init__(self, ref=False, threads=None):
        self.enc = make('soundstream_encoder', ref, threads).get_signature_runner('serving_default')
        q = make('quantizer', ref, threads)
        self.qenc = q.get_signature_runner('encode'); self.qdec = q.get_signature_runner('decode')
        self.gen = make('lyragan', ref, threads).get_signature_runner('serving_default')
    def encode(self, frame):  # frame float32 [320]
        return self.enc(input_audio=frame.reshape(1, 320).astype(np.float32))['output_0'].reshape(64)
    def quantize(self, feat, nq):
        out = self.qenc(input_frames=feat.reshape(1, 1, 64).astype(np.float32), num_quantizers=np.array(nq, np.int32))
        return out['output_0'].reshape(46)   # output_1 = bits per quantizer
    def dequantize(self, codes):
        return self.qdec(encoding_indices=codes.reshape(46, 1, 1).astype(np.int32))['output_0'].reshape(64)
    def decode(self, feat):
        return self.gen(input_audio=feat.reshape(1, 1, 64).astype(np.float32))['output_0'].reshape(320)

if __name__ == '__main__':
    name = sys.argv[1] if len(sys.argv) > 1 else 'sample1_16kHz'
    x = read_wav(FX+name+'.wav'); T = len(x)//320
    for ref in (False, True):
        tag = '.refkernels' if ref else ''
        c = Codec(ref)
        feats = np.stack([c.encode(x[t*320:(t+1)*320]) for t in range(T)])
        rf = np.load(FX+name+tag+'.features.npy')
        print(f'[{"REF" if ref else "default"}] features maxabs {np.abs(feats-rf).max():.3g} snr {snr(rf,feats):.2f} dB')
        for nq in (16, 30, 46):
            codes = np.stack([c.quantize(f, nq) for f in feats], 1)
            rc = np.load(FX+name+tag+f'.nq{nq}.codes.npy')
            print(f'  nq{nq} codes equal {np.mean(codes==rc):.4f}', end='')
            if not ref:
                dq = np.stack([c.dequantize(rc[:, t]) for t in range(T)])
                rdq = np.load(FX+name+f'.nq{nq}.dequantized.npy')
                print(f' dequant maxabs {np.abs(dq-rdq).max():.3g}', end='')
            c2 = Codec(ref)  # fresh generator state
            dec = np.concatenate([c2.decode(c2.dequantize(rc[:, t])) for t in range(T)])
            rd = np.load(FX+name+tag+f'.nq{nq}.decoded.npy')
            print(f' decoded(from ref codes) maxabs {np.abs(dec-rd).max():.3g} snr {snr(rd,dec):.2f} dB')
