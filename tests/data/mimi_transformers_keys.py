"""Key manifest of the Hugging Face transformers `MimiModel` as kyutai/mimi's model.safetensors
stores it, in the format of the fixtures' `full-keys.json`.

No hub access needed: the default `MimiConfig()` is the published model (kyutai/mimi's
config.json), built here on the meta device; only names and shapes are written.

transformers 5 nests the halves (`encoder.encoder_seanet.layers`, `encoder.encoder_transformer`,
`encoder.downsample`, ...) and renames the checkpoint's flat keys at load
(`conversion_mapping.py`, "MimiModel"); the checkpoint on the hub keeps the flat layout of
transformers 4 (`encoder.layers`, `encoder_transformer`, `downsample`, ...), which is what this
writes: the state dict's names with that renaming undone.

    pip install --user torch transformers
    python3 tests/data/mimi_transformers_keys.py > tests/data/mimi-transformers-keys.json
"""

import json

import torch
import transformers

config = transformers.MimiConfig()
with torch.device("meta"):
    model = transformers.MimiModel(config)
state = model.state_dict()
# transformers 5's nesting -> the checkpoint's flat names (conversion_mapping.py, backwards).
FLAT = [
    ("encoder.encoder_seanet.layers.", "encoder.layers."),
    ("encoder.encoder_transformer.", "encoder_transformer."),
    ("encoder.downsample.", "downsample."),
    ("decoder.upsample.", "upsample."),
    ("decoder.decoder_transformer.", "decoder_transformer."),
    ("decoder.decoder_seanet.layers.", "decoder.layers."),
]


def flat(key):
    for nested, checkpoint in FLAT:
        if key.startswith(nested):
            return checkpoint + key[len(nested):]
    return key


keys = [[flat(k), list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()]
assert len({k for k, _, _ in keys}) == len(keys)
n_params = sum(p.numel() for p in model.parameters())
doc = {
    "source": f"transformers {transformers.__version__}: MimiModel(MimiConfig()).state_dict()",
    "config": config.to_diff_dict() | {"num_quantizers": config.num_quantizers},
    "n_params": n_params,
    "keys": keys,
}
print(json.dumps(doc, indent=0))
