"""Reference fixtures for S3Tokenizer's ONNX loading and its v1 architecture.

The published S3Tokenizer weights exist only as ONNX graphs, which the `s3tokenizer` package
reads with `onnx2torch` (v1, v2) or `onnx2torch_v3` (v3): the state-dict keys come from the
names of the graph's nodes and initializers. This script writes three small ONNX files laid out
as those functions expect (node names, initializer names, MatMul weights stored [in, out], the
v1 codebook stored [dim, codes], v3's biases partly in Constant nodes), from seeded random
weights of tiny models:

- `v1.onnx`: `S3Tokenizer` (v1: absolute sinusoid positions, plain attention, Euclidean VQ),
  width 64, 1 head, 2 blocks, 512 codes; conv1 stride 1 in the graph (50 Hz, the
  `speech_tokenizer_v1` naming). The same weights are also run as the 25 Hz model
  (`speech_tokenizer_v1_25hz`: conv1 stride 2), so one file serves both.
- `v2.onnx`: `S3TokenizerV2` (FSMN, rotary, FSQ 6561), width 64, 1 head, 2 blocks, the
  `speech_tokenizer_v2` naming (a LayerNormalization node per norm).
- `v3.onnx`: `S3TokenizerV3`, same sizes, the naming `onnx2torch_v3` reads (decomposed
  LayerNorms, a bias in a Constant node).

Each file is checked before it is written: the reference's own converter must return exactly
the weights the model was built with. Then the reference loads the file (`init_from_onnx`) and
encodes the 16 kHz clips of `../shared/fixtures/s3tokenizer` (and the 33 s long case for v1);
`cases.json` holds the codes, the keys and shapes the converter produced, and the frames whose
code is a near-tie (a float32 port may pick the neighbour there).

Run (s3tokenizer 0.3.0, onnx, torch, numpy, safetensors):
    python tests/data/s3tokenizer/make_fixtures.py ../shared/fixtures/s3tokenizer
It is deterministic: running it again rewrites the same files.
"""

import json
import os
import sys

import numpy as np
import onnx
import s3tokenizer
import torch
from onnx import TensorProto, helper, numpy_helper
from s3tokenizer.model import ModelConfig as ConfigV1
from s3tokenizer.model import S3Tokenizer
from s3tokenizer.model_v2 import ModelConfig as ConfigV2
from s3tokenizer.model_v2 import S3TokenizerV2
from s3tokenizer.model_v3 import ModelConfigV3, S3TokenizerV3
from s3tokenizer.utils import onnx2torch, onnx2torch_v3

OUT = os.path.dirname(os.path.abspath(__file__))
WIDTH, HEADS, LAYERS, V1_CODES = 64, 1, 2, 512


def perturb(model, seed):
    """Seeded weights with the structure's traits visible: norms off (1, 0), biases non-zero,
    sharper attention so positions matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("_ln.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise * (1.0 / p.shape[-1] ** 0.5 if p.dim() == 2 else 0.5 / p[0].numel() ** 0.5))
            if ".attn.query." in name or ".attn.key." in name:
                p.mul_(2.5)


def wav16(path):
    import wave

    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return torch.from_numpy(data.astype(np.float32) / 32768.0)


def clips(shared):
    out = {
        "speech_a": wav16(os.path.join(shared, "speech_a.16k.wav")),
        "speech_b_odd": wav16(os.path.join(shared, "speech_b_odd.16k.wav")),
    }
    # The fixture's long case: 6 x (speech_a + speech_b_odd), 33 s.
    out["long_concat"] = torch.cat([out["speech_a"], out["speech_b_odd"]] * 6)
    return out


def mel_of(audio):
    mel = s3tokenizer.log_mel_spectrogram(audio)
    return s3tokenizer.padding([mel])


# ---- ONNX graphs laid out as the published ones ----------------------------------------------


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def tensor(self, name, value):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value.numpy()), name))
        return name

    def anon(self, value):
        self.n += 1
        return self.tensor(f"onnx::Param_{1000 + self.n}", value)

    def node(self, op, name, inputs, **attrs):
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def constant(self, name, value):
        out = f"{name}_output_0"
        self.nodes.append(
            helper.make_node(
                "Constant", [], [out], name=name, value=numpy_helper.from_array(value.numpy(), out)
            )
        )
        return out

    def save(self, path):
        graph = helper.make_graph(
            self.nodes,
            "s3tokenizer-test",
            [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, 128, None])],
            [helper.make_tensor_value_info(self.nodes[-1].output[0], TensorProto.FLOAT, None)],
            initializer=self.inits,
        )
        model = helper.make_model(graph, producer_name="make_fixtures.py")
        onnx.save(model, path)


def linear(g, x, prefix, sd, key, bias=True, const_bias=False):
    """MatMul on the weight stored [in, out] (what torch's exporter writes), then Add."""
    y = g.node("MatMul", f"{prefix}/MatMul", [x, g.anon(sd[f"{key}.weight"].t())])
    if bias:
        b = sd[f"{key}.bias"]
        src = g.constant(f"{prefix}/Constant", b) if const_bias else g.tensor(f"{key[8:]}.bias", b)
        y = g.node("Add", f"{prefix}/Add", [y, src])
    return y


def layer_norm(g, x, prefix, sd, key, decomposed):
    w, b = sd[f"{key}.weight"], sd[f"{key}.bias"]
    if not decomposed:  # v2: one LayerNormalization node
        return g.node(
            "LayerNormalization",
            f"{prefix}/LayerNormalization",
            [x, g.tensor(f"{key[8:]}.weight", w), g.tensor(f"{key[8:]}.bias", b)],
            epsilon=1e-5,
            axis=-1,
        )
    mean = g.node("ReduceMean", f"{prefix}/ReduceMean", [x])
    d = g.node("Sub", f"{prefix}/Sub", [x, mean])
    sq = g.node("Pow", f"{prefix}/Pow", [d, g.constant(f"{prefix}/Constant", torch.tensor(2.0))])
    var = g.node("ReduceMean", f"{prefix}/ReduceMean_1", [sq])
    eps = g.constant(f"{prefix}/Constant_eps", torch.tensor(1e-5))
    std = g.node("Sqrt", f"{prefix}/Sqrt", [g.node("Add", f"{prefix}/Add", [var, eps])])
    n = g.node("Div", f"{prefix}/Div", [d, std])
    y = g.node("Mul", f"{prefix}/Mul", [n, g.anon(w)])
    return g.node("Add", f"{prefix}/Add_1", [y, g.anon(b)])


def blocks(g, x, sd, version):
    decomposed = version != 2
    for i in range(LAYERS):
        p, k = f"/blocks.{i}", f"encoder.blocks.{i}"
        h = layer_norm(g, x, f"{p}/attn_ln", sd, f"{k}.attn_ln", decomposed)
        q = linear(g, h, f"{p}/attn/query", sd, f"{k}.attn.query", const_bias=version == 3)
        kk = linear(g, h, f"{p}/attn/key", sd, f"{k}.attn.key", bias=False)
        v = linear(g, h, f"{p}/attn/value", sd, f"{k}.attn.value")
        a = g.node("MatMul", f"{p}/attn/MatMul", [q, kk])
        a = g.node("MatMul", f"{p}/attn/MatMul_1", [a, v])
        o = linear(g, a, f"{p}/attn/out", sd, f"{k}.attn.out")
        if version != 1:
            fsmn = sd[f"{k}.attn.fsmn_block.weight"]
            name = f"blocks.{i}.attn.fsmn_block.weight" if version == 3 else g.anon(fsmn)
            if version == 3:
                g.tensor(name, fsmn)
            m = g.node("Conv", f"{p}/attn/fsmn_block/Conv", [v, name], group=WIDTH, pads=[15, 15])
            o = g.node("Add", f"{p}/attn/Add_2", [o, m])
        x = g.node("Add", f"{p}/Add", [x, o])
        h = layer_norm(g, x, f"{p}/mlp_ln", sd, f"{k}.mlp_ln", decomposed)
        h = linear(g, h, f"{p}/mlp/mlp.0", sd, f"{k}.mlp.0")
        h = g.node("Gelu", f"{p}/mlp/mlp.1/Gelu", [h])
        h = linear(g, h, f"{p}/mlp/mlp.2", sd, f"{k}.mlp.2")
        x = g.node("Add", f"{p}/Add_1", [x, h])
    return x


def graph_v1(sd):
    g = Graph()
    x = g.node("Conv", "/conv1/Conv", ["mel", g.tensor("onnx::Conv_1519", sd["encoder.conv1.weight"]),
                                         g.tensor("onnx::Conv_1520", sd["encoder.conv1.bias"])],
               strides=[1], pads=[1, 1], kernel_shape=[3])
    x = g.node("Gelu", "/Gelu", [x])
    x = g.node("Conv", "/conv2/Conv", [x, g.tensor("onnx::Conv_1521", sd["encoder.conv2.weight"]),
                                        g.tensor("onnx::Conv_1522", sd["encoder.conv2.bias"])],
               strides=[2], pads=[1, 1], kernel_shape=[3])
    x = g.node("Transpose", "/Transpose", [g.node("Gelu", "/Gelu_1", [x])], perm=[0, 2, 1])
    x = g.node("Add", "/Add", [x, g.tensor("encoders.positional_embedding",
                                           sd["encoder.positional_embedding"])])
    x = blocks(g, x, sd, 1)
    # The codebook, stored [dim, codes] (the exporter folded `embed.t()`), read by a MatMul and by
    # the Pow of its squared norms; onnx2torch keys it by that Pow node's name.
    q = "/quantizer/rq/model/layers.0/_codebook"
    embed_t = g.tensor("onnx::MatMul_2000", sd["quantizer._codebook.embed"].t())
    g.node("Pow", f"{q}/Pow", [x, g.constant(f"{q}/Constant", torch.tensor(2.0))])
    xe = g.node("MatMul", f"{q}/MatMul", [x, embed_t])
    g.node("Pow", f"{q}/Pow_1", [embed_t, g.constant(f"{q}/Constant_1", torch.tensor(2.0))])
    g.node("ArgMax", f"{q}/ArgMax", [xe], axis=-1)
    return g


def graph_v23(sd, version):
    g = Graph()
    if version == 2:
        names = ["onnx::Conv_2216", "onnx::Conv_2217", "onnx::Conv_2218", "onnx::Conv_2219"]
    else:
        names = ["onnx::Conv_3001", "onnx::Conv_3002", "onnx::Conv_3003", "onnx::Conv_3004"]
    keys = ["encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias"]
    t = [g.tensor(n, sd[k]) for n, k in zip(names, keys)]
    x = g.node("Conv", "/conv1/Conv", ["mel", t[0], t[1]], strides=[2], pads=[1, 1], kernel_shape=[3])
    x = g.node("Gelu", "/Gelu", [x])
    x = g.node("Conv", "/conv2/Conv", [x, t[2], t[3]], strides=[2], pads=[1, 1], kernel_shape=[3])
    x = g.node("Transpose", "/Transpose", [g.node("Gelu", "/Gelu_1", [x])], perm=[0, 2, 1])
    x = blocks(g, x, sd, version)
    pd_w = sd["quantizer._codebook.project_down.weight"].t()
    if version == 2:
        y = g.node("MatMul", "/quantizer/_codebook/project_down/MatMul", [x, g.tensor("onnx::MatMul_2536", pd_w)])
    else:
        y = g.node("MatMul", "/quantizer/_codebook/project_down/MatMul", [x, g.anon(pd_w)])
    y = g.node("Add", "/quantizer/_codebook/project_down/Add",
               [y, g.tensor("quantizer.project_in.bias", sd["quantizer._codebook.project_down.bias"])])
    g.node("Tanh", "/quantizer/_codebook/Tanh", [y])
    return g


# ---- the reference on the clips ---------------------------------------------------------------


@torch.no_grad()
def fsq_near_ties(model, mel, mel_len, margin=1e-4):
    hidden, lens = model.encoder(mel, mel_len)
    h = model.quantizer._codebook.project_down(hidden[0, : lens[0]]).float().tanh() * 0.9990000128746033
    dist = (h.abs() - 0.5).abs().min(dim=-1).values
    return [int(i) for i in torch.nonzero(dist < margin).flatten()], float(dist.min())


@torch.no_grad()
def vq_near_ties(model, mel, mel_len, margin=1e-4):
    hidden, lens = model.encoder(mel, mel_len)
    x = torch.nn.functional.normalize(hidden[0, : lens[0]].double(), p=2, dim=-1)
    embed = model.quantizer._codebook.embed.double()
    score = 2 * x @ embed.t() - embed.pow(2).sum(1)
    top = score.topk(2, dim=-1).values
    gap = top[:, 0] - top[:, 1]
    return [int(i) for i in torch.nonzero(gap < margin).flatten()], float(gap.min())


def encode(model, audio):
    mel, mel_len = mel_of(audio)
    codes, lens = model.quantize(mel, mel_len)
    return [int(c) for c in codes[0, : lens[0]]]


def main(shared):
    torch.manual_seed(0)
    audio = clips(shared)
    cases = {"generator": "tests/data/s3tokenizer/make_fixtures.py", "s3tokenizer": "0.3.0",
             "torch": torch.__version__.split("+")[0], "models": {}}

    # v1 -------------------------------------------------------------------------------------
    cfg1 = ConfigV1(n_mels=128, n_audio_ctx=1500, n_audio_state=WIDTH, n_audio_head=HEADS,
                    n_audio_layer=LAYERS, n_codebook_size=V1_CODES)
    v1 = S3Tokenizer("speech_tokenizer_v1", cfg1).eval()
    perturb(v1, 1)
    # Codebook rows near the clips' normalised encoder outputs (so many codes are in use), with
    # norms spread by a few percent (so the |e|^2 term of the distance matters).
    with torch.no_grad():
        gen = torch.Generator().manual_seed(11)
        hs = torch.cat([v1.encoder(*mel_of(audio[c]))[0][0] for c in ("speech_a", "speech_b_odd")])
        hs = torch.nn.functional.normalize(hs, dim=-1)
        rows = hs[torch.randint(0, hs.shape[0], (V1_CODES,), generator=gen)]
        e = torch.nn.functional.normalize(rows + 0.3 * torch.randn(rows.shape, generator=gen) / WIDTH**0.5, dim=-1)
        v1.quantizer._codebook.embed.copy_(e * (1 + 0.05 * torch.rand(V1_CODES, 1, generator=gen)))
    sd1 = {k: v.clone() for k, v in v1.state_dict().items()}
    path = os.path.join(OUT, "v1.onnx")
    graph_v1(sd1).save(path)
    check(onnx2torch(path, None, False), sd1, "v1")
    for name, stride_name in [("v1-50hz", "speech_tokenizer_v1"), ("v1-25hz", "speech_tokenizer_v1_25hz")]:
        ref = S3Tokenizer(stride_name, cfg1).eval()
        ref.init_from_onnx(path)
        entry = {"file": "v1.onnx", "reference_name": stride_name, "config": vars(cfg1),
                 "keys": keys_of(onnx2torch(path, None, False)), "cases": {}}
        for case, a in audio.items():
            mel, mel_len = mel_of(a)
            ties, gap = vq_near_ties(ref, mel, mel_len) if mel_len[0] <= 3000 else ([], None)
            entry["cases"][case] = {"codes": encode(ref, a), "ambiguous_frames": ties,
                                    "smallest_score_gap": gap}
        cases["models"][name] = entry

    # v2 / v3 ----------------------------------------------------------------------------------
    for version, cls, cfg_cls, name in [(2, S3TokenizerV2, ConfigV2, "speech_tokenizer_v2_25hz"),
                                        (3, S3TokenizerV3, ModelConfigV3, "speech_tokenizer_v3_25hz")]:
        cfg = cfg_cls(n_mels=128, n_audio_ctx=1500, n_audio_state=WIDTH, n_audio_head=HEADS,
                      n_audio_layer=LAYERS)
        m = cls(name, cfg).eval()
        perturb(m, version)
        # project_down scaled so each pre-tanh value is zero-mean, unit-variance over the clips.
        with torch.no_grad():
            hs = torch.cat([m.encoder(*mel_of(audio[c]))[0][0] for c in ("speech_a", "speech_b_odd")])
            pd = m.quantizer._codebook.project_down
            pre = pd(hs)
            mean, std = pre.mean(0), pre.std(0)
            pd.weight.div_(std[:, None])
            pd.bias.copy_((pd.bias - mean) / std)
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        path = os.path.join(OUT, f"v{version}.onnx")
        graph_v23(sd, version).save(path)
        convert = onnx2torch if version == 2 else onnx2torch_v3
        check(convert(path, None, False), sd, f"v{version}")
        ref = cls(name, cfg).eval()
        ref.init_from_onnx(path)
        entry = {"file": f"v{version}.onnx", "reference_name": name, "config": vars(cfg),
                 "keys": keys_of(convert(path, None, False)), "cases": {}}
        for case in ("speech_a", "speech_b_odd"):
            mel, mel_len = mel_of(audio[case])
            ties, gap = fsq_near_ties(ref, mel, mel_len)
            entry["cases"][case] = {"codes": encode(ref, audio[case]), "ambiguous_frames": ties,
                                    "smallest_tie_distance": gap}
        cases["models"][f"v{version}"] = entry

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    for name, entry in cases["models"].items():
        for case, c in entry["cases"].items():
            print(name, case, len(c["codes"]), "codes,", len(set(c["codes"])), "distinct, ambiguous",
                  c["ambiguous_frames"])


def keys_of(sd):
    return {k: list(v.shape) for k, v in sorted(sd.items())}


def check(converted, sd, what):
    want = {k: v for k, v in sd.items()}
    assert sorted(converted) == sorted(want), (what, sorted(set(converted) ^ set(want)))
    for k, v in want.items():
        assert converted[k].shape == v.shape and torch.equal(converted[k].float(), v.float()), (what, k)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures/s3tokenizer")
