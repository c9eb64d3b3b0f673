"""The wheel against the fixtures, the CLI, itself (batches, streams) and bad input.

Run from the repo root after `maturin develop` (README, "Python"):
    pytest crates/codec-py/tests
Fixtures come from ../shared beside the repo; with CODEC_REQUIRE_FIXTURES=1 (as .ci/run sets)
a missing one fails instead of skipping. CODEC_CLI names the `codec` binary to compare with.
"""

import json
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

import codec

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"


def fixture(*parts) -> Path:
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        if os.environ.get("CODEC_REQUIRE_FIXTURES", "0") != "0":
            pytest.fail(f"fixture {path} is absent and CODEC_REQUIRE_FIXTURES is set")
        pytest.skip(f"fixture {path} is absent")
    return path


def read_wav(path: Path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        data = data.reshape(-1, w.getnchannels()).T
        return data.astype(np.float32) / 32768.0, w.getframerate()


def cli() -> str:
    exe = os.environ.get("CODEC_CLI") or shutil.which("codec")
    if not exe:
        built = REPO / "target" / "debug" / "codec"
        exe = str(built) if built.exists() else None
    if not exe:
        pytest.skip("no codec binary (set CODEC_CLI)")
    return exe


@pytest.fixture(scope="module")
def lyra():
    return codec.load("lyra-v2")


@pytest.fixture(scope="module")
def tiny():
    return codec.load("tinycodec-24khz")


def test_lyra_codes_and_audio_equal_the_reference_kernels(lyra):
    d = fixture("lyra")
    cases = json.loads((d / "cases.json").read_text())
    for name in ["libri_16k", "music_16k"]:
        frames = next(c["frames"] for c in cases.values() if c["input"] == f"{name}.wav")
        audio, rate = read_wav(d / f"{name}.wav")
        for nq in (16, 46):
            codes = lyra.encode(audio[0], rate, codebooks=nq)
            want = np.load(d / f"{name}.refkernels.nq{nq}.codes.npy")[:nq, :frames]
            np.testing.assert_array_equal(codes[:, :frames], want, err_msg=f"{name} nq{nq}")
        # The runtime's own codes decode to its audio, bit for bit.
        ref_codes = np.load(d / f"{name}.refkernels.nq16.codes.npy")[:16].astype(np.int64)
        decoded = lyra.decode(ref_codes)
        want = np.load(d / f"{name}.refkernels.nq16.decoded.npy")
        np.testing.assert_array_equal(decoded[: want.size], want, err_msg=name)


def test_same_codes_as_the_cli(tmp_path, lyra):
    wav = fixture("lyra", "libri_16k.wav")
    out = tmp_path / "cli.tok"
    subprocess.run([cli(), "encode", str(wav), str(out)], check=True, capture_output=True)
    from_cli = codec.read_tokens(out)
    audio, rate = read_wav(wav)
    ours = lyra.encode_tokens(audio, rate)
    assert ours == from_cli
    np.testing.assert_array_equal(lyra.encode(audio, rate), np.stack(from_cli.streams()))
    # And the CLI decodes what the wheel writes.
    mine = tmp_path / "wheel.tok"
    ours.write(mine)
    rec = tmp_path / "rec.wav"
    subprocess.run([cli(), "decode", str(mine), str(rec), "--float"], check=True, capture_output=True)
    audio_back, _ = lyra.decode_tokens(ours)
    assert rec.stat().st_size > 44 + 4 * audio_back.size - 1


def test_token_files_round_trip(tmp_path, tiny):
    audio = np.random.default_rng(1).standard_normal(24_000).astype(np.float32) * 0.1
    t = tiny.encode_tokens(audio, 24_000)
    path = tmp_path / "a.tok"
    t.write(path)
    back = codec.read_tokens(path)
    assert back == t and back.model == "tinycodec-24khz"
    assert codec.Tokens.from_bytes(t.to_bytes()) == t
    assert back.num_frames == t.num_frames and back.original_length == 24_000
    a, rate = tiny.decode_tokens(back)
    assert rate == 24_000 and a.shape == (24_000,)
    # Back at the original rate.
    t44 = tiny.encode_tokens(audio, 44_100)
    a44, rate44 = tiny.decode_tokens(t44, original_rate=True)
    assert rate44 == 44_100 and a44.shape == (24_000,)
    assert t44.notes and "44100" in t44.notes[0]


@pytest.mark.parametrize("count", [1, 2, 5, 8])
def test_batches_equal_one_at_a_time(lyra, count):
    rng = np.random.default_rng(count)
    lengths = [8000, 4800, 8000, 3333, 8000, 4800, 12000, 8000][:count]
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths]
    batch = lyra.encode_batch(clips, 16_000)
    for clip, codes in zip(clips, batch):
        np.testing.assert_array_equal(codes, lyra.encode(clip, 16_000))
    decoded = lyra.decode_batch(batch)
    for codes, audio in zip(batch, decoded):
        np.testing.assert_array_equal(audio, lyra.decode(codes))


def test_multi_scale_codes_are_a_list():
    d = fixture("snac", "snac24")
    m = codec.load(str(d))
    assert m.multi_scale
    audio, rate = read_wav(fixture("snac", "speech_a.wav"))
    codes = m.encode(audio[0][:12_000], rate)
    assert isinstance(codes, list) and len(codes) == len(m.codebook_sizes)
    assert codes[1].size == 2 * codes[0].size
    assert m.decode(codes).ndim == 1


def test_streaming_equals_batch(lyra):
    audio, rate = read_wav(fixture("lyra", "libri_16k.wav"))
    audio = audio[0][: 3 * rate + 123]
    whole = lyra.encode(audio, rate)
    enc = lyra.stream_encoder()
    pieces = [enc.push(audio[i : i + 777]) for i in range(0, audio.size, 777)]
    pieces.append(enc.finish())
    streamed = np.concatenate([p for p in pieces if p.size], axis=1)
    np.testing.assert_array_equal(streamed, whole)
    dec = lyra.stream_decoder()
    audio_stream = np.concatenate([dec.push(streamed[:, i : i + 5]) for i in range(0, streamed.shape[1], 5)])
    np.testing.assert_array_equal(audio_stream[: audio.size], lyra.decode(whole)[: audio.size])


def test_long_inputs_run_in_windows():
    # DAC's windows are exact: the codes of one pass, in the memory of a window.
    m = codec.load(str(fixture("dac")))
    assert m.window_seconds == 30.0
    audio, rate = read_wav(fixture("dac", "speech_a.wav"))
    long = np.tile(audio[0], int(np.ceil(12 * rate / audio.shape[1])))[: 12 * rate]
    m.window_seconds = None
    whole = m.encode(long, rate, codebooks=4)
    one_pass = m.decode(whole)
    m.window_seconds = 2.0
    np.testing.assert_array_equal(m.encode(long, rate, codebooks=4), whole)
    # Audio to float32 rounding (tests/long_form.rs: 138 dB).
    np.testing.assert_allclose(m.decode(whole), one_pass, rtol=0, atol=1e-6)
    m.window_seconds = -1.0
    with pytest.raises(ValueError, match="window_seconds"):
        m.encode(long, rate)


def test_info(lyra):
    assert lyra.sample_rate == 16_000 and lyra.channels == 1 and lyra.frame_rate == 50
    assert lyra.bandwidths_kbps == [3.2, 6.0, 9.2]
    assert lyra.encode(np.zeros(1600, np.float32), 16_000, bandwidth=6.0).shape[0] == 30
    assert any(m["name"] == "lyra-v2" and m["built_in"] for m in codec.models())
    assert lyra.options == {} and lyra.unused_keys == []


def test_model_options():
    default = codec.load("tinycodec-24khz")
    assert default.options["window_frames"]["value"] != "7"
    windowed = codec.load("tinycodec-24khz", options={"window_frames": 7})
    assert windowed.options["window_frames"]["value"] == "7"
    audio = (0.3 * np.sin(np.arange(24_000) * 0.01)).astype(np.float32)
    # The window changes memory only, not the codes.
    np.testing.assert_array_equal(default.encode(audio, 24_000), windowed.encode(audio, 24_000))
    with pytest.raises(codec.CodecError, match="window_frames"):
        codec.load("tinycodec-24khz", options={"no_such": 1})


def test_errors_are_python_exceptions(lyra, tiny):
    with pytest.raises(codec.CodecError, match="unknown model"):
        codec.load("no-such-model")
    with pytest.raises(codec.CodecError, match="out of range"):
        lyra.decode(np.full((16, 4), 16))
    with pytest.raises(codec.CodecError, match="batch item 1"):
        lyra.encode_batch([np.zeros(1600, np.float32), np.zeros(0, np.float32)], 16_000)
    with pytest.raises(ValueError, match="use 1 to 46"):
        lyra.encode(np.zeros(1600, np.float32), 16_000, codebooks=47)
    with pytest.raises(ValueError, match="not one of model lyra-v2"):
        lyra.encode(np.zeros(1600, np.float32), 16_000, bandwidth=5.0)
    with pytest.raises(ValueError, match="shape"):
        lyra.encode(np.zeros((1, 1, 5), np.float32), 16_000)
    with pytest.raises(codec.CodecError, match="sample rate"):
        lyra.encode(np.zeros(1600, np.float32), 0)
    with pytest.raises(codec.CodecError):
        codec.Tokens.from_bytes(b"not a token file")
    with pytest.raises(codec.CodecError, match="made by model"):
        tiny.decode_tokens(lyra.encode_tokens(np.zeros(1600, np.float32), 16_000))
    with pytest.raises(codec.CodecError, match="stream"):
        tiny_dac = codec.load(str(fixture("dac")))
        tiny_dac.stream_encoder()


def test_cli_shards_read_with_tarfile_and_numpy(tmp_path, lyra):
    import io
    import tarfile

    folder = SHARED / "audio" / "eval"
    if not folder.is_dir():
        pytest.fail(f"{folder} is absent")
    out = tmp_path / "shards"
    pattern = str(folder / "*.flac")
    subprocess.run([cli(), "encode", pattern, str(out), "--shards", "--shard-size", "3"],
                   check=True, capture_output=True)
    index = [json.loads(line) for p in sorted(out.glob("shard-*.jsonl")) for line in p.read_text().splitlines()]
    assert index and all(r["model"] == "lyra-v2" for r in index)
    seen = 0
    for shard in sorted(out.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            for name in names:
                if not name.endswith(".codes.npy"):
                    continue
                key = name[: -len(".codes.npy")]
                codes = np.load(io.BytesIO(tar.extractfile(name).read()))
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                assert codes.shape == (16, meta["frames"]) and codes.dtype == np.int64
                audio, rate = codec.read_audio(meta["path"])
                np.testing.assert_array_equal(codes, lyra.encode(audio, rate))
                seen += 1
    assert seen == len(index) == len(list(folder.glob("*.flac")))
