"""Ray Data: a local instance (2 CPUs, localhost only) tokenizes ../shared/audio/eval through
codec.ray, and every item equals what the CLI's corpus mode writes, byte for byte."""

import os
import subprocess
from pathlib import Path

import pytest

if os.environ.get("CODEC_REQUIRE_RAY", "0") != "0":
    import ray  # .ci/python-tests installs it: a missing Ray fails there
else:
    ray = pytest.importorskip("ray")

import codec
import codec.ray

from test_codec import SHARED, cli


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", ignore_reinit_error=True)
    yield
    ray.shutdown()


def eval_folder() -> Path:
    folder = SHARED / "audio" / "eval"
    if not folder.is_dir():
        if os.environ.get("CODEC_REQUIRE_FIXTURES", "0") != "0":
            pytest.fail(f"{folder} is absent and CODEC_REQUIRE_FIXTURES is set")
        pytest.skip(f"{folder} is absent")
    return folder


def test_ray_tokenizes_like_the_cli_corpus_mode(tmp_path, local_ray):
    folder = eval_folder()
    by_cli = tmp_path / "cli"
    subprocess.run([cli(), "encode", str(folder), str(by_cli)], check=True, capture_output=True)

    by_ray = tmp_path / "ray"
    ds = codec.ray.dataset_from_folder(folder)
    rows = codec.ray.tokenize(ds, str(by_ray), concurrency=2, return_tokens=True).take_all()

    want = sorted(p.relative_to(by_cli).as_posix() for p in by_cli.rglob("*.tok"))
    got = sorted(p.relative_to(by_ray).as_posix() for p in by_ray.rglob("*.tok"))
    assert len(want) == len(codec.ray.list_folder(folder)) >= 80
    assert got == want
    for name in want:
        assert (by_ray / name).read_bytes() == (by_cli / name).read_bytes(), name
    assert all(r["error"] == "" for r in rows)
    by_id = {r["id"]: r for r in rows}
    first = codec.ray.list_folder(folder)[0]["id"]
    assert by_id[first]["tokens"] == (by_cli / f"{first}.tok").read_bytes()


def test_ray_reports_a_bad_item_and_goes_on(tmp_path, local_ray):
    import ray.data

    good = codec.ray.list_folder(eval_folder())[0]
    data = Path(good["path"]).read_bytes()
    ds = ray.data.from_items([
        {"id": "good", "bytes": data, "name": Path(good["path"]).name},
        {"id": "bad", "bytes": b"RIFF not audio", "name": "bad.wav"},
    ])
    rows = {r["id"]: r for r in codec.ray.tokenize(ds, str(tmp_path), concurrency=1).take_all()}
    assert rows["good"]["error"] == "" and rows["good"]["frames"] > 0
    assert "bad.wav" in rows["bad"]["error"]
    assert (tmp_path / "good.tok").exists() and not (tmp_path / "bad.tok").exists()
