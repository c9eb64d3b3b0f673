#!/usr/bin/env python3
"""Encode/decode speed and peak memory of the reference Python packages, for comparison with
`cargo bench --bench codec_bench` (same models, same cases, same audio lengths).

    pip install encodec descript-audio-codec snac      # beside a CPU PyTorch
    python benches/reference/bench_reference.py                          # encodec,dac,snac; 10 and 60 s
    python benches/reference/bench_reference.py --models snac --seconds 10 --runs 1

Models (``--models``, comma-separated, ``all`` for every one):

  encodec         EnCodec 24 kHz, ``EncodecModel.encodec_model_24khz(pretrained=False)``, 6 kbit/s
                  (``set_target_bandwidth(6.0)``: 8 codebooks)
  encodec-24kbps  the same at 24 kbit/s (all 32 codebooks)
  dac             DAC 44.1 kHz, ``dac.model.DAC(...)`` with the published 44 kHz arguments, all 9
                  codebooks; encode = ``preprocess`` + ``encode``, decode = ``quantizer.from_codes``
                  + ``decode`` (the plain forward, not the chunked ``compress``/``decompress``)
  snac            SNAC 24 kHz, ``SNAC(**config)`` with the published ``hubertsiuzdak/snac_24khz``
                  config; ``encode`` / ``decode`` (decoder noise on, as shipped)
  snac-32khz      SNAC 32 kHz (``hubertsiuzdak/snac_32khz``, with local attention)
  mimi            Mimi (``moshi`` 0.2.13), ``moshi.models.loaders.get_mimi(None, num_codebooks=8)``
                  (the published config, random init); tasks ``encode`` / ``decode`` (batch) and
                  ``encode-stream`` / ``decode-stream`` (``with model.streaming(1)``, one 1920-sample
                  frame / one code frame per step, as moshi streams); stream cases also report
                  per-frame compute time (median, p95, max)
  xcodec2         X-Codec2 (``xcodec2`` 0.1.5, installed without its dependencies, on
                  transformers' ``Wav2Vec2BertModel``): decode = ``CodecDecoderVocos()`` (hidden
                  1024, 12 layers, 16 heads, hop 320 at 16 kHz) and ``fc_post_a = Linear(2048,
                  1024)`` as ``XCodec2Model.decode_code`` does; encode = ``encode_code``'s path
                  from its parts (its ``__init__`` downloads w2v-BERT): padding, the
                  SeamlessM4T feature extractor, w2v-BERT 2.0 (24 layers, ``hidden_states[16]``),
                  ``SemanticEncoder``, ``CodecEncoder_Transformer``, ``fc_prior``, the FSQ
  lyra            Lyra v2 (SoundStream, 16 kHz) at 3.2 kbit/s: Google's published TFLite files
                  (``../shared/fixtures/lyra/``, the real weights) under LiteRT (``ai-edge-litert``,
                  default CPU kernels = XNNPACK, ``Interpreter(num_threads=--threads)``), one
                  320-sample frame per call as Lyra runs: encode = encoder + ``quantizer.encode``
                  (16 quantizers), decode = ``quantizer.decode`` + generator, on random codes in
                  [0, 16); ``encode-stream`` / ``decode-stream`` are the same loops with the
                  per-frame compute time (median, p95, max) reported. Needs numpy and
                  ai-edge-litert only (no torch)
  speechtokenizer SpeechTokenizer (``speechtokenizer`` 1.0.1, installed without its dependencies),
                  ``SpeechTokenizer(config)`` with the published speechtokenizer_hubert_avg model
                  fields, all 8 codebooks: ``encode`` (codes [8, 1, frames]) / ``decode``. The
                  package's ``__init__`` imports its trainer (accelerate, beartype, ...); only
                  ``speechtokenizer.model`` is loaded
  s3tokenizer     S3Tokenizer v2 (``s3tokenizer`` 0.3.0, installed without its dependencies),
                  ``S3TokenizerV2("speech_tokenizer_v2_25hz")`` (the published sizes, random init);
                  encode only: ``log_mel_spectrogram`` + ``padding`` + ``quantize`` (the long path
                  past 30 s). ``torchaudio`` and ``onnx``, imported for file loading and ONNX
                  conversion only, are stubbed when absent
  s3tokenizer-v1  S3Tokenizer v1 at 50 Hz, ``S3Tokenizer("speech_tokenizer_v1")`` (published
                  sizes, random init), the same calls
  qwen3-tts       Qwen3-TTS-Tokenizer-12Hz (``qwen-tts`` 0.1.1 without its dependencies, on
                  transformers 4.57.3): ``Qwen3TTSTokenizerV2Model(config)`` with the published
                  config (Qwen/Qwen3-TTS-Tokenizer-12Hz config.json values), all 16 codebooks;
                  ``encode(x, padding_mask)`` / ``decode(codes)`` (its 300-frame chunked decode).
                  The package's ``__init__`` loads the 25 Hz tokenizer (sox, onnxruntime,
                  librosa); only ``qwen_tts.core.tokenizer_12hz`` is loaded
  moss-audio-tokenizer
                  MOSS-Audio-Tokenizer (not on PyPI: the OpenMOSS/MOSS-Audio-Tokenizer repository's
                  ``configuration_/modeling_moss_audio_tokenizer.py`` at commit 56df9ee, from the
                  checkout or bare git directory ``MOSS_AUDIO_TOKENIZER_SRC`` names, default
                  ``target/refsrc/MOSS-Audio-Tokenizer``; on transformers 5.0.0, which it pins):
                  ``MossAudioTokenizerModel(MossAudioTokenizerConfig(**published config.json))``,
                  1.77 B parameters, all 32 codebooks: ``encode(x)`` / ``decode(codes)``
  xy-tokenizer    XY-Tokenizer, the repo's 16 kHz release (not on PyPI: the
                  gyt1145028706/XY-Tokenizer repository's ``xy_tokenizer`` package and
                  ``config/xy_tokenizer_config.yaml`` at commit 5df5609, from the checkout or bare
                  git directory ``XY_TOKENIZER_SRC`` names, default ``target/refsrc/XY-Tokenizer``;
                  on transformers 5.0.0 like MOSS's, the repo pins none):
                  ``XY_Tokenizer(generator_params)``, 534 M values, all 8 codebooks:
                  ``encode([wav], device=cpu)`` / ``decode([codes], device=cpu)`` (its 30 s
                  windows, 10 s overlap, past 30 s). ``librosa``, imported by the repo and
                  unused, is stubbed when absent
  wavtokenizer    not on PyPI: reported as skipped

The models are built from their classes with the packages' own random initialisation: nothing is
downloaded. Each case (model x task x audio length) runs in a fresh interpreter (this script with
``--case``) so that its peak resident memory is its own (``VmHWM``, equal to
``resource.getrusage(RUSAGE_SELF).ru_maxrss``; it includes the ~300 MB that importing torch
costs). Timing: ``torch.set_num_threads(--threads)`` (default 2; ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` are set for the child too), under ``torch.inference_mode()``, best of
``--runs`` (default 3 up to 30 s, else 2). Each child prints one ``REF_RESULT {json}`` line.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

RESULT_TAG = "REF_RESULT "
MODELS = ["encodec", "encodec-24kbps", "dac", "snac", "snac-32khz", "mimi", "xcodec2", "lyra",
          "speechtokenizer", "s3tokenizer", "s3tokenizer-v1", "qwen3-tts", "moss-audio-tokenizer",
          "xy-tokenizer", "wavtokenizer"]
STREAMING_MODELS = {"mimi", "lyra"}
DEFAULT_MODELS = "encodec,dac,snac"

SNAC_CONFIGS = {
    # hubertsiuzdak/snac_24khz config.json
    "snac": dict(
        sampling_rate=24000, encoder_dim=48, encoder_rates=[2, 4, 8, 8], decoder_dim=1024,
        decoder_rates=[8, 8, 4, 2], attn_window_size=None, codebook_size=4096, codebook_dim=8,
        vq_strides=[4, 2, 1], noise=True, depthwise=True,
    ),
    # hubertsiuzdak/snac_32khz config.json
    "snac-32khz": dict(
        sampling_rate=32000, encoder_dim=64, encoder_rates=[2, 3, 8, 8], decoder_dim=1536,
        decoder_rates=[8, 8, 3, 2], attn_window_size=32, codebook_size=4096, codebook_dim=8,
        vq_strides=[8, 4, 2, 1], noise=True, depthwise=True,
    ),
}

# descript/dac_44khz (weights_44khz_8kbps.pth metadata kwargs)
DAC_44KHZ = dict(
    encoder_dim=64, encoder_rates=[2, 4, 8, 8], decoder_dim=1536, decoder_rates=[8, 8, 4, 2],
    n_codebooks=9, codebook_size=1024, codebook_dim=8, sample_rate=44100,
)

SAMPLE_RATES = {"encodec": 24000, "encodec-24kbps": 24000, "dac": 44100, "snac": 24000,
                "snac-32khz": 32000, "mimi": 24000, "xcodec2": 16000, "lyra": 16000,
                "speechtokenizer": 16000, "s3tokenizer": 16000, "s3tokenizer-v1": 16000,
                "qwen3-tts": 24000, "moss-audio-tokenizer": 24000,
                "xy-tokenizer": 16000}
ENCODE_ONLY = {"s3tokenizer", "s3tokenizer-v1"}

# fnlp/SpeechTokenizer speechtokenizer_hubert_avg/config.json: the fields the model reads.
SPEECHTOKENIZER_HUBERT_AVG = dict(
    n_filters=64, strides=[8, 5, 4, 2], dimension=1024, semantic_dimension=768,
    bidirectional=True, dilation_base=2, residual_kernel_size=3, n_residual_layers=1,
    lstm_layers=2, activation="ELU", codebook_size=1024, n_q=8, sample_rate=16000,
)

# Qwen/Qwen3-TTS-Tokenizer-12Hz config.json: the encoder's MimiConfig and the decoder's fields
# (codebook_dim and head_dim, which the decoder config class does not define, included).
QWEN3_TTS_12HZ = dict(
    encoder_valid_num_quantizers=16, input_sample_rate=24000, output_sample_rate=24000,
    encode_downsample_rate=1920, decode_upsample_rate=1920,
    encoder_config=dict(
        sampling_rate=24000, hidden_size=512, num_filters=64, num_residual_layers=1,
        upsampling_ratios=[8, 6, 5, 4], kernel_size=7, last_kernel_size=3, residual_kernel_size=3,
        dilation_growth_rate=2, use_causal_conv=True, pad_mode="constant", compress=2,
        codebook_size=2048, codebook_dim=256, num_quantizers=32,
        vector_quantization_hidden_dimension=256, num_hidden_layers=8, intermediate_size=2048,
        num_attention_heads=8, num_key_value_heads=8, head_dim=64, sliding_window=250,
        frame_rate=12.5, num_semantic_quantizers=1, use_cache=False,
    ),
    decoder_config=dict(
        codebook_dim=512, head_dim=64, codebook_size=2048, hidden_size=512, latent_dim=1024,
        num_attention_heads=16, num_key_value_heads=16, sliding_window=72, intermediate_size=1024,
        num_hidden_layers=8, num_quantizers=16, upsample_rates=[8, 5, 4, 3],
        upsampling_ratios=[2, 2], decoder_dim=1536,
    ),
)

# The MOSS-Audio-Tokenizer reference's source: a checkout or bare git directory of the
# OpenMOSS/MOSS-Audio-Tokenizer repository, read at this commit.
MOSS_COMMIT = "56df9eeb88f7236419dbf6328cd2e51f4dc21eeb"
MOSS_SRC_DEFAULT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                 "..", "target", "refsrc", "MOSS-Audio-Tokenizer"))
# Its __init__.py (the Hugging Face remote-code entry points) is not needed.
MOSS_FILES = ("modeling_moss_audio_tokenizer.py", "configuration_moss_audio_tokenizer.py",
              "config.json")

# The XY-Tokenizer reference's source (gyt1145028706/XY-Tokenizer), read at this commit: the
# commit the fixtures were made with.
XY_COMMIT = "5df5609"
XY_SRC_DEFAULT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                               "..", "target", "refsrc", "XY-Tokenizer"))
XY_FILES = ("xy_tokenizer/model.py", "xy_tokenizer/nn/feature_extractor.py",
            "xy_tokenizer/nn/modules.py", "xy_tokenizer/nn/quantizer.py",
            "config/xy_tokenizer_config.yaml")

# Lyra v2's published TFLite files (google/lyra lyra/model_coeffs, v1.3.2), in the shared folder
# beside the repository; 16 quantizers = 3.2 kbit/s, Lyra's lowest bitrate.
LYRA_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "..", "shared", "fixtures", "lyra"))
LYRA_QUANTIZERS = 16
# The X-Codec2 fixture's preprocessor_config.json: facebook/w2v-bert-2.0's feature extractor.
XCODEC2_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "..", "..", "shared", "fixtures", "xcodec2"))


def proc_status_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def import_torchaudio_leniently():
    """`encodec` and `descript-audiotools` import torchaudio at module level (for file I/O and
    resampling, which the benchmark does not use). A torchaudio wheel built for another CUDA
    version than the installed torch refuses to import; its CUDA check is skipped here, which
    changes nothing for CPU inference."""
    import torch
    try:
        import torchaudio  # noqa: F401
        return None
    except ModuleNotFoundError:
        # Not every reference needs it (SpeechTokenizer's model does not); those that do fail
        # at their own import, naming it.
        return None
    except RuntimeError as e:
        if "CUDA version" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        cuda = torch.version.cuda
        torch.version.cuda = None
        try:
            import torchaudio  # noqa: F401
        finally:
            torch.version.cuda = cuda
        return f"torchaudio CUDA check skipped ({e})"


def speech_like(samples, sample_rate, seed=7):
    """A speech-like signal (harmonic chirps, syllable envelope, some noise); content does not
    change the cost, only the length does."""
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    f0 = 175.0 + 70.0 * np.sin(2 * np.pi * 0.37 * t) + 15.0 * np.sin(2 * np.pi * 5.5 * t)
    phase = np.cumsum(2 * np.pi * f0 / sample_rate)
    voiced = sum(np.sin(phase * h) / h for h in range(1, 7))
    env = 0.15 + 0.85 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.1 * t)) ** 2
    x = 0.25 * env * voiced + 0.03 * rng.uniform(-1, 1, samples)
    return x.astype("float32")


def tflite_params(path):
    """Elements of the constant tensors of a TFLite file (each distinct buffer once), read with
    the flatbuffer schema that ships in ai-edge-litert; None if it cannot be read."""
    try:
        from ai_edge_litert import schema_py_generated as schema
        with open(path, "rb") as f:
            model = schema.Model.GetRootAs(bytearray(f.read()), 0)
        seen, total = set(), 0
        for g in range(model.SubgraphsLength()):
            sub = model.Subgraphs(g)
            for t in range(sub.TensorsLength()):
                tensor = sub.Tensors(t)
                b = tensor.Buffer()
                if b == 0 or b in seen:
                    continue
                buf = model.Buffers(b)
                if buf.DataLength() == 0 and buf.Size() == 0:
                    continue
                seen.add(b)
                total += math.prod(tensor.ShapeAsNumpy().tolist()) if tensor.ShapeLength() else 1
        return total
    except Exception:  # noqa: BLE001 - the count is informative only
        return None


def run_case_lyra(task, seconds, runs, threads):
    """Lyra v2 under LiteRT, frame by frame as Lyra runs it (no torch involved)."""
    import numpy as np
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter
    sr, hop, n_q = SAMPLE_RATES["lyra"], 320, LYRA_QUANTIZERS
    samples = int(round(seconds * sr))
    frames = math.ceil(samples / hop)
    t0 = time.perf_counter()
    paths = {m: os.path.join(LYRA_DIR, m + ".tflite")
             for m in ("soundstream_encoder", "quantizer", "lyragan")}
    interp = {m: Interpreter(model_path=p, num_threads=threads) for m, p in paths.items()}
    encoder = interp["soundstream_encoder"].get_signature_runner("serving_default")
    q_encode = interp["quantizer"].get_signature_runner("encode")
    q_decode = interp["quantizer"].get_signature_runner("decode")
    generator = interp["lyragan"].get_signature_runner("serving_default")
    nq = np.array(n_q, np.int32)
    x = np.zeros(frames * hop, np.float32)
    x[:samples] = speech_like(samples, sr)
    x = x.reshape(frames, 1, hop)
    rng = np.random.default_rng(11)
    codes = np.full((frames, 46, 1, 1), -1, np.int32)  # rows >= n_q unused, as Lyra sends them
    codes[:, :n_q] = rng.integers(0, 16, (frames, n_q, 1, 1), dtype=np.int32)
    # One untimed frame through each model (its first invoke runs CALL_ONCE, which zeroes the
    # streaming state, and sets up the XNNPACK delegate), like the load of the other models.
    q_decode(encoding_indices=q_encode(input_frames=encoder(input_audio=x[0])["output_0"],
                                       num_quantizers=nq)["output_0"])
    generator(input_audio=np.zeros((1, 1, 64), np.float32))
    frame_times = []
    timed = task.endswith("-stream")

    if task in ("encode", "encode-stream"):
        def step():
            frame_times.clear()
            for f in x:
                t = time.perf_counter() if timed else 0.0
                c = q_encode(input_frames=encoder(input_audio=f)["output_0"],
                             num_quantizers=nq)["output_0"]
                if timed:
                    frame_times.append(time.perf_counter() - t)
            assert c.shape == (46, 1, 1) and c[n_q - 1, 0, 0] >= 0 and c[n_q, 0, 0] == -1, c
    elif task in ("decode", "decode-stream"):
        def step():
            frame_times.clear()
            for c in codes:
                t = time.perf_counter() if timed else 0.0
                y = generator(input_audio=q_decode(encoding_indices=c)["output_0"])["output_0"]
                if timed:
                    frame_times.append(time.perf_counter() - t)
            assert y.shape == (1, hop), y.shape
    else:
        raise ValueError(f"unknown task {task}")

    result, frame_ms = measure("lyra", task, seconds, runs, step, t0, frame_times, hop / sr)
    return {"samples": samples, "frames": frames,
            "params": sum(tflite_params(p) or 0 for p in paths.values()) or None, **result,
            "litert_threads": threads,
            "versions": {"ai-edge-litert": getattr(ai_edge_litert, "__version__", "?"),
                         "numpy": np.__version__},
            "note": f"LiteRT default CPU kernels (XNNPACK delegate), {n_q} quantizers "
                    f"({n_q * 4 * sr // hop / 1000:g} kbit/s), one Interpreter per model; "
                    "the stream state carries on from run to run",
            "frame_compute_ms": frame_ms}


def repo_files(what, env, default, commit, names, package=""):
    """Files of a reference repository (`what`, found at $`env` or `default`) copied into a
    fresh temporary folder put first on sys.path, under `package` when given: from a checkout,
    or read at `commit` from a bare git directory (a `src` without the first file). Every folder
    gets an empty ``__init__.py``. Returns the folder."""
    import importlib
    import tempfile
    src = os.environ.get(env, default)
    if not os.path.exists(src):
        raise ImportError(f"no {what} source at {src} (set {env} to a checkout of the repository)")
    out = tempfile.mkdtemp(prefix="refsrc_")
    bare = not os.path.exists(os.path.join(src, names[0]))
    for name in names:
        if bare:
            data = subprocess.run(["git", "--git-dir", src, "show", f"{commit}:{name}"],
                                  check=True, capture_output=True).stdout
        else:
            with open(os.path.join(src, name), "rb") as f:
                data = f.read()
        dest = os.path.join(package, name)
        os.makedirs(os.path.join(out, os.path.dirname(dest)), exist_ok=True)
        with open(os.path.join(out, dest), "wb") as f:
            f.write(data)
        folder = os.path.dirname(dest)
        while folder:
            init = os.path.join(out, folder, "__init__.py")
            if not os.path.exists(init):
                open(init, "wb").close()
            folder = os.path.dirname(folder)
    sys.path.insert(0, out)
    importlib.invalidate_caches()
    return out


def run_case(key, task, seconds, runs, threads):
    if key == "lyra":
        return run_case_lyra(task, seconds, runs, threads)
    note = import_torchaudio_leniently()
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sr = SAMPLE_RATES[key]
    samples = int(round(seconds * sr))
    gen = torch.Generator().manual_seed(11)
    t0 = time.perf_counter()
    versions = {"torch": torch.__version__}
    frame_times, hop = [], None  # set by the streaming models

    if key in ("encodec", "encodec-24kbps"):
        import encodec
        from encodec import EncodecModel
        versions["encodec"] = getattr(encodec, "__version__", "?")
        model = EncodecModel.encodec_model_24khz(pretrained=False)
        bandwidth = 6.0 if key == "encodec" else 24.0
        model.set_target_bandwidth(bandwidth)
        model.eval()
        n_q = 8 if key == "encodec" else 32
        frames = math.ceil(samples / 320)
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)

            def step():
                out = model.encode(x)
                codes = torch.cat([c for c, _ in out], dim=-1)
                assert tuple(codes.shape) == (1, n_q, frames), codes.shape
        else:
            codes = torch.randint(0, 1024, (1, n_q, frames), generator=gen)

            def step():
                y = model.decode([(codes, None)])
                assert y.shape[:2] == (1, 1) and abs(y.shape[-1] - frames * 320) < 320, y.shape
    elif key == "dac":
        import dac
        versions["descript-audio-codec"] = getattr(dac, "__version__", "?")
        model = dac.model.DAC(**DAC_44KHZ).eval()
        hop = 512
        frames = math.ceil(samples / hop)
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)

            def step():
                z, codes, *_ = model.encode(model.preprocess(x, sr))
                assert tuple(codes.shape) == (1, 9, frames), codes.shape
        else:
            codes = torch.randint(0, 1024, (1, 9, frames), generator=gen)

            def step():
                z = model.quantizer.from_codes(codes)[0]
                y = model.decode(z)
                assert y.shape[:2] == (1, 1) and abs(y.shape[-1] - frames * hop) < hop, y.shape
    elif key in SNAC_CONFIGS:
        import snac
        from snac import SNAC
        versions["snac"] = getattr(snac, "__version__", "?")
        cfg = SNAC_CONFIGS[key]
        model = SNAC(**cfg).eval()
        hop = math.prod(cfg["encoder_rates"])
        s0, w = cfg["vq_strides"][0], cfg["attn_window_size"] or 1
        multiple = s0 * w // math.gcd(s0, w)
        frames = math.ceil(samples / (hop * multiple)) * multiple
        lens = [frames // s for s in cfg["vq_strides"]]
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)

            def step():
                codes = model.encode(x)
                assert [c.shape[-1] for c in codes] == lens, [c.shape for c in codes]
        else:
            codes = [torch.randint(0, 4096, (1, n), generator=gen) for n in lens]

            def step():
                y = model.decode(codes)
                assert tuple(y.shape) == (1, 1, frames * hop), y.shape
    elif key == "mimi":
        import moshi
        from moshi.models import loaders
        versions["moshi"] = getattr(moshi, "__version__", "?")
        model = loaders.get_mimi(None, device="cpu", num_codebooks=8).eval()
        hop, n_q = 1920, 8
        frames = samples // hop
        samples = frames * hop
        frame_times = []
        x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)
        codes = torch.randint(0, 2048, (1, n_q, frames), generator=gen)
        if task == "encode":
            def step():
                c = model.encode(x)
                assert tuple(c.shape) == (1, n_q, frames), c.shape
        elif task == "decode":
            def step():
                y = model.decode(codes)
                assert tuple(y.shape) == (1, 1, samples), y.shape
        elif task == "encode-stream":
            def step():
                frame_times.clear()
                with model.streaming(1):
                    for f in range(frames):
                        t = time.perf_counter()
                        c = model.encode(x[:, :, f * hop:(f + 1) * hop])
                        frame_times.append(time.perf_counter() - t)
                        assert tuple(c.shape) == (1, n_q, 1), c.shape
        elif task == "decode-stream":
            def step():
                frame_times.clear()
                with model.streaming(1):
                    for f in range(frames):
                        t = time.perf_counter()
                        y = model.decode(codes[:, :, f:f + 1])
                        frame_times.append(time.perf_counter() - t)
                        assert tuple(y.shape) == (1, 1, hop), y.shape
        else:
            raise ValueError(f"unknown task {task}")
    elif key == "xcodec2":
        # torchtune's package __init__ insists on a torchao matching its torch; the decoder uses
        # only its RotaryPositionalEmbeddings, so load that file (torchtune's own code) alone.
        import importlib.machinery
        import importlib.util
        import types
        spec = importlib.util.find_spec("torchtune")
        pe_path = os.path.join(os.path.dirname(spec.origin), "modules", "position_embeddings.py")
        pe_spec = importlib.util.spec_from_file_location("torchtune.modules", pe_path)
        pe = importlib.util.module_from_spec(pe_spec)
        sys.modules.setdefault("torchtune", types.ModuleType("torchtune"))
        sys.modules["torchtune.modules"] = pe
        pe_spec.loader.exec_module(pe)
        try:  # imported by the package's modules for file I/O only
            import torchaudio  # noqa: F401
        except ImportError:
            stub = types.ModuleType("torchaudio")
            stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
            sys.modules["torchaudio"] = stub
        import xcodec2
        from xcodec2.vq.codec_decoder_vocos import CodecDecoderVocos
        versions["xcodec2"] = getattr(xcodec2, "__version__", "0.1.5")
        decoder = CodecDecoderVocos().eval()
        fc_post_a = torch.nn.Linear(2048, 1024).eval()
        hop = 320
        # encode_code pads by up to a whole hop: one frame more than whole hops.
        frames = samples // hop + 1
        if task == "encode":
            # XCodec2Model.encode_code's path, built from its parts (its __init__ downloads
            # facebook/w2v-bert-2.0): the feature extractor with that repo's settings (the
            # fixture's preprocessor_config.json), w2v-BERT 2.0 at its published size (all 24
            # layers run, as the reference runs them; hidden_states[16] is used), the semantic
            # and acoustic encoders, fc_prior, the FSQ.
            from transformers import (SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig,
                                      Wav2Vec2BertModel)
            from xcodec2.vq.codec_encoder import CodecEncoder_Transformer
            from xcodec2.vq.module import SemanticEncoder
            import transformers
            versions["transformers"] = transformers.__version__
            fe = SeamlessM4TFeatureExtractor.from_pretrained(XCODEC2_DIR)
            semantic = Wav2Vec2BertModel(Wav2Vec2BertConfig()).eval()
            semantic_encoder = SemanticEncoder(1024, 1024, 1024).eval()
            acoustic = CodecEncoder_Transformer().eval()
            fc_prior = torch.nn.Linear(2048, 2048).eval()
            model = torch.nn.ModuleList([semantic, semantic_encoder, acoustic, fc_prior, decoder])
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, samples)

            def step():
                wav = torch.nn.functional.pad(x, (0, hop - samples % hop))
                fe_in = torch.nn.functional.pad(wav, (160, 160))
                feats = fe(fe_in[0].numpy(), sampling_rate=sr, return_tensors="pt").input_features
                hidden = semantic(feats, output_hidden_states=True).hidden_states[16]
                sem = semantic_encoder(hidden.transpose(1, 2))
                ac = acoustic(wav.unsqueeze(1)).transpose(1, 2)
                n = min(sem.shape[-1], ac.shape[-1])
                both = torch.cat([sem[..., :n], ac[..., :n]], dim=1)
                both = fc_prior(both.transpose(1, 2)).transpose(1, 2)
                _, codes, _ = decoder(both, vq=True)
                assert codes.shape[-1] == frames, codes.shape
        else:
            model = torch.nn.ModuleList([decoder, fc_post_a])
            codes = torch.randint(0, 65536, (1, 1, frames), generator=gen)

            def step():
                emb = decoder.quantizer.get_output_from_indices(codes.transpose(1, 2))
                emb = fc_post_a(emb)  # [1, frames, 1024]
                y = decoder(emb, vq=False)[0]
                assert abs(y.shape[-1] - frames * hop) < hop, y.shape
    elif key == "speechtokenizer":
        # Load `speechtokenizer.model` without the package's __init__ (which imports the trainer
        # and its dependencies): a bare package module pointing at the installed folder.
        import importlib.util
        import types
        spec = importlib.util.find_spec("speechtokenizer")
        if spec is None:
            raise ImportError("speechtokenizer is not installed (run_all.sh --setup)")
        pkg = types.ModuleType("speechtokenizer")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["speechtokenizer"] = pkg
        from speechtokenizer.model import SpeechTokenizer
        versions["speechtokenizer"] = "1.0.1"
        model = SpeechTokenizer(SPEECHTOKENIZER_HUBERT_AVG).eval()
        hop, n_q = 320, 8
        frames = math.ceil(samples / hop)
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)

            def step():
                codes = model.encode(x)
                assert tuple(codes.shape) == (n_q, 1, frames), codes.shape
        else:
            codes = torch.randint(0, 1024, (n_q, 1, frames), generator=gen)

            def step():
                y = model.decode(codes)
                assert tuple(y.shape) == (1, 1, frames * hop), y.shape
    elif key in ("s3tokenizer", "s3tokenizer-v1"):
        import types
        for name in ("torchaudio", "onnx"):  # file loading / ONNX conversion only
            try:
                __import__(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)
        import s3tokenizer
        versions["s3tokenizer"] = getattr(s3tokenizer, "__version__", "0.3.0")
        if key == "s3tokenizer":
            model = s3tokenizer.S3TokenizerV2("speech_tokenizer_v2_25hz").eval()
        else:
            model = s3tokenizer.S3Tokenizer("speech_tokenizer_v1").eval()
        if task != "encode":
            raise ValueError(f"{key}: encode only")
        x = torch.from_numpy(speech_like(samples, sr))
        frames = samples // 160
        hop = None

        def step():
            mel = s3tokenizer.log_mel_spectrogram(x)
            mels, lens = s3tokenizer.padding([mel])
            codes, code_lens = model.quantize(mels, lens)
            assert codes.shape[0] == 1 and int(code_lens[0]) > 0, codes.shape
    elif key == "qwen3-tts":
        # Load `qwen_tts.core.tokenizer_12hz` without the package's __init__ files (they load
        # the 25 Hz tokenizer and its dependencies): bare package modules over the installed
        # folders.
        import importlib.util
        import types
        spec = importlib.util.find_spec("qwen_tts")
        if spec is None:
            raise ImportError("qwen-tts is not installed (run_all.sh --setup)")
        root = list(spec.submodule_search_locations)[0]
        for name, sub in (("qwen_tts", ""), ("qwen_tts.core", "core"),
                          ("qwen_tts.core.tokenizer_12hz", "core/tokenizer_12hz")):
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(root, sub) if sub else root]
            sys.modules[name] = pkg
        import transformers
        from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import (
            Qwen3TTSTokenizerV2Config)
        from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import (
            Qwen3TTSTokenizerV2Model)
        versions["qwen-tts"] = "0.1.1"
        versions["transformers"] = transformers.__version__
        cfg = dict(QWEN3_TTS_12HZ)
        enc = dict(cfg.pop("encoder_config"))
        enc["_frame_rate"] = enc.pop("frame_rate")
        config = Qwen3TTSTokenizerV2Config(encoder_config=enc,
                                           decoder_config=cfg.pop("decoder_config"), **cfg)
        model = Qwen3TTSTokenizerV2Model(config).eval()
        hop, n_q = 1920, 16
        frames = math.ceil(samples / hop)
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, samples)
            mask = torch.ones(1, samples, dtype=torch.long)

            def step():
                codes = model.encode(x, padding_mask=mask, return_dict=True).audio_codes
                assert tuple(codes[0].shape) == (frames, n_q), codes[0].shape
        else:
            codes = torch.randint(0, 2048, (1, frames, n_q), generator=gen)

            def step():
                y = model.decode(codes, return_dict=True).audio_values
                assert tuple(y[0].shape) == (frames * hop,), y[0].shape
    elif key == "moss-audio-tokenizer":
        import importlib
        import transformers
        name = "moss_audio_tokenizer_ref"
        out = repo_files("MOSS-Audio-Tokenizer", "MOSS_AUDIO_TOKENIZER_SRC", MOSS_SRC_DEFAULT,
                         MOSS_COMMIT, MOSS_FILES, package=name)
        with open(os.path.join(out, name, "config.json")) as f:
            published = json.load(f)
        conf = importlib.import_module(f"{name}.configuration_moss_audio_tokenizer")
        modeling = importlib.import_module(f"{name}.modeling_moss_audio_tokenizer")
        versions["moss-audio-tokenizer"] = MOSS_COMMIT[:7]
        versions["transformers"] = transformers.__version__
        fields = {k: v for k, v in published.items()
                  if k not in ("architectures", "auto_map", "transformers_version", "dtype")}
        config = conf.MossAudioTokenizerConfig(**fields)
        model = modeling.MossAudioTokenizerModel(config).eval()
        hop, n_q = 1920, 32
        frames = math.ceil(samples / hop)
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr)).reshape(1, 1, samples)

            def step():
                codes = model.encode(x, return_dict=True).audio_codes
                assert tuple(codes.shape) == (n_q, 1, frames), codes.shape
        else:
            codes = torch.randint(0, 1024, (n_q, 1, frames), generator=gen)

            def step():
                y = model.decode(codes, return_dict=True).audio
                assert tuple(y.shape) == (1, 1, frames * hop), y.shape
    elif key == "xy-tokenizer":
        import importlib
        import transformers
        import yaml
        try:
            import librosa  # noqa: F401  (imported by the repo's modules, never called)
        except ImportError:
            import types
            sys.modules["librosa"] = types.ModuleType("librosa")
        out = repo_files("XY-Tokenizer", "XY_TOKENIZER_SRC", XY_SRC_DEFAULT, XY_COMMIT, XY_FILES)
        with open(os.path.join(out, "config", "xy_tokenizer_config.yaml")) as f:
            generator_params = yaml.safe_load(f)["generator_params"]
        XY_Tokenizer = importlib.import_module("xy_tokenizer.model").XY_Tokenizer
        versions["xy-tokenizer"] = XY_COMMIT
        versions["transformers"] = transformers.__version__
        model = XY_Tokenizer(generator_params).eval()
        cpu = torch.device("cpu")
        hop, n_q = 1280, 8
        frames = samples // hop  # whole code frames only
        if task == "encode":
            x = torch.from_numpy(speech_like(samples, sr))

            def step():
                codes = model.encode([x], device=cpu)["codes_list"][0]
                assert tuple(codes.shape) == (n_q, frames), codes.shape
        else:
            codes = torch.randint(0, 1024, (n_q, frames), generator=gen)

            def step():
                y = model.decode([codes], device=cpu)["syn_wav_list"][0]
                assert tuple(y.shape) == (frames * hop,), y.shape
    else:
        raise ValueError(f"unknown model {key}")

    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        timed, frame_ms = measure(key, task, seconds, runs, step, t0, frame_times,
                                  hop / sr if hop else None)
    return {"samples": samples, "frames": frames, "params": params, **timed,
            "torch_threads": torch.get_num_threads(), "versions": versions, "note": note,
            "frame_compute_ms": frame_ms}


def measure(key, task, seconds, runs, step, t0, frame_times=None, frame_s=None):
    """Times `step` (best of `runs`; `t0` = when loading began) and reads the process's CPU
    time, faults and peak memory. `frame_times` (seconds, filled by a streaming `step`) give
    the per-frame compute (median, p95, max, of the last run; `frame_s` = one frame of audio)
    for the -stream tasks. Returns (the result's timing fields, the per-frame compute or None)."""
    load_s = time.perf_counter() - t0
    after_load = proc_status_mib("VmRSS")
    walls = []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(runs):
        t = time.perf_counter()
        step()
        wall = time.perf_counter() - t
        print(f"  reference {key} {task} {seconds} s run {i + 1}/{runs}: {wall:.2f} s",
              file=sys.stderr, flush=True)
        walls.append(wall)
    best = min(walls)
    frame_ms = None
    if key in STREAMING_MODELS and task.endswith("-stream") and frame_times:
        ms = sorted(t * 1000.0 for t in frame_times)  # of the last run
        frame_ms = {"median": ms[len(ms) // 2], "p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
                    "max": ms[-1], "frame_ms": 1000.0 * frame_s}
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {"user_s_per_run": (ru1.ru_utime - ru0.ru_utime) / runs,
           "sys_s_per_run": (ru1.ru_stime - ru0.ru_stime) / runs,
           "minor_faults_per_run": (ru1.ru_minflt - ru0.ru_minflt) // runs}
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {
        "runs": runs,
        "wall_s": best,
        "walls_s": walls,
        "rtf": seconds / best,
        "peak_rss_mib": proc_status_mib("VmHWM") or maxrss_mib,
        "ru_maxrss_mib": maxrss_mib,
        "after_load_rss_mib": after_load,
        "load_s": load_s,
        "cpu": cpu,
    }, frame_ms


def child(args):
    key = args.models[0]
    seconds = args.seconds[0]
    runs = args.runs or (3 if seconds <= 30 else 2)
    base = {"impl": "reference", "model_key": key, "task": args.case, "audio_s": seconds,
            "threads": str(args.threads)}
    if key == "wavtokenizer":
        base["skipped"] = "WavTokenizer has no reference package on PyPI"
        print(RESULT_TAG + json.dumps(base), flush=True)
        return 0
    try:
        base.update(run_case(key, args.case, seconds, runs, args.threads))
    except Exception as e:  # noqa: BLE001 - report and fail this case only
        print(f"bench_reference: {key} {args.case} {seconds} s failed: {e!r}", file=sys.stderr)
        return 1
    print(RESULT_TAG + json.dumps(base), flush=True)
    return 0


def child_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def parent(args):
    rows, failed = [], 0
    for key in args.models:
        for seconds in args.seconds:
            tasks = (["encode"] if key in ENCODE_ONLY
                     else ["encode", "decode"])
            if key in STREAMING_MODELS:
                tasks += ["encode-stream", "decode-stream"]
            for task in tasks:
                print(f"reference {key} {task} {seconds} s ...", file=sys.stderr, flush=True)
                cmd = [sys.executable, os.path.abspath(__file__), "--case", task, "--models", key,
                       "--seconds", str(seconds), "--threads", str(args.threads)]
                if args.runs:
                    cmd += ["--runs", str(args.runs)]
                out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                                     env=child_env(args.threads))
                line = next((l[len(RESULT_TAG):] for l in out.stdout.splitlines()
                             if l.startswith(RESULT_TAG)), None)
                if out.returncode != 0 or line is None:
                    failed += 1
                    continue
                rows.append(json.loads(line))
    print()
    print(f"{'model':<16} {'task':<7} {'audio':<6} {'wall(s)':<8} {'RTF':<6} peak RSS (MB)")
    for r in rows:
        if "skipped" in r:
            print(f"{r['model_key']:<16} {r['task']:<7} {r['audio_s']:<6} skipped: {r['skipped']}")
            continue
        print(f"{r['model_key']:<16} {r['task']:<7} {str(r['audio_s']) + ' s':<6} "
              f"{r['wall_s']:<8.2f} {r['rtf']:<6.1f} {r['peak_rss_mib']:.0f}")
    print(f"(reference packages, {args.threads} threads; RTF = audio seconds / wall seconds, best "
          "of the runs; MB = MiB, VmHWM of the case's own interpreter)")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=["encode", "decode", "encode-stream", "decode-stream"])
    p.add_argument("--models", "--model", default=DEFAULT_MODELS)
    p.add_argument("--seconds", default="10,60")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int)
    args = p.parse_args()
    models = []
    for k in (m.strip() for m in args.models.split(",") if m.strip()):
        if k == "all":
            models += [m for m in MODELS if m != "wavtokenizer"]
        elif k in MODELS:
            models.append(k)
        else:
            p.error(f"unknown model {k!r} (known: {', '.join(MODELS)}, all)")
    args.models = list(dict.fromkeys(models))
    args.seconds = [float(s) for s in args.seconds.split(",")]
    if args.case:
        if len(args.models) != 1 or len(args.seconds) != 1:
            p.error("--case takes one model and one length")
        sys.exit(child(args))
    sys.exit(parent(args))


if __name__ == "__main__":
    main()
