"""Tokenize a folder, or a Parquet / JSONL manifest (columns `id`, `path`), on Ray Data.

    python examples/ray_tokenize.py corpus/ tokens/                 # a folder
    python examples/ray_tokenize.py manifest.parquet tokens/ --model mimi --workers 8
    RAY_ADDRESS=head:6379 python examples/ray_tokenize.py ...        # on a running cluster

Writes `tokens/ID.tok` for every item (what `codec encode corpus/ tokens/` writes) and
`tokens/_index/*.json` with id, path, frames, duration, model, fingerprint and error per item;
with `--shards`, Parquet shards instead (`tokens/*.parquet`: those columns plus `tokens`, the
`.tok` bytes, which `codec.Tokens.from_bytes` reads). Exits non-zero if any item failed.
"""

import argparse
import sys

import ray
import ray.data

import codec.ray


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of audio, or a .parquet / .jsonl manifest with id and path")
    p.add_argument("output", help="output folder (shared by every node on a cluster)")
    p.add_argument("--model", default=codec.DEFAULT_MODEL)
    p.add_argument("--workers", type=int, default=2, help="model-holding workers (one CPU each)")
    p.add_argument("--codebooks", type=int)
    p.add_argument("--shards", action="store_true", help="write Parquet shards with the token bytes")
    args = p.parse_args()

    ray.init()  # RAY_ADDRESS selects a cluster; without it a local instance starts
    if args.source.endswith(".parquet"):
        ds = ray.data.read_parquet(args.source)
    elif args.source.endswith((".jsonl", ".json")):
        ds = ray.data.read_json(args.source)
    else:
        ds = codec.ray.dataset_from_folder(args.source)
    results = codec.ray.tokenize(ds, None if args.shards else args.output, model=args.model,
                                 concurrency=args.workers, codebooks=args.codebooks,
                                 return_tokens=args.shards).materialize()
    if args.shards:
        results.write_parquet(args.output)
    else:
        results.write_json(f"{args.output}/_index")
    failed = results.filter(lambda r: r["error"] != "").take_all()
    for r in failed:
        print(f"failed: {r['path']}: {r['error']}", file=sys.stderr)
    print(f"{results.count() - len(failed)} encoded, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
