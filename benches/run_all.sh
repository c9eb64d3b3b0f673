#!/usr/bin/env bash
# One comparison run on this machine: our models (`cargo bench --bench codec_bench`), the
# reference Python packages (`benches/reference/bench_reference.py`) and candle-transformers'
# implementations (`benches/candle-reference`, a package outside the workspace), case by case, then one Markdown table.
#
#   benches/run_all.sh                                  # wavtokenizer,encodec,dac,snac; 10 s and 60 s; 2 threads
#   benches/run_all.sh --models encodec,snac --seconds 10 --runs 1
#   benches/run_all.sh --setup                          # first make the Python venv (see below), then run
#
# Options:
#   --models LIST    wavtokenizer, encodec (24 kHz at 6 kbit/s), encodec-24kbps, dac (44.1 kHz),
#                    snac (24 kHz), snac-32khz, mimi (batch and streaming), xcodec2 (encode and decode),
#                    lyra (Lyra v2 at 3.2 kbit/s, batch and streaming; its reference is LiteRT
#                    on the published TFLite files), speechtokenizer (all 8 codebooks),
#                    s3tokenizer (v2, encode only), s3tokenizer-v1 (50 Hz, encode only),
#                    qwen3-tts (Qwen3-TTS-Tokenizer-12Hz, 16 codebooks),
#                    moss-audio-tokenizer (1.77 B parameters, 32 codebooks; its reference runs on
#                    transformers 5.0.0 from target/refbench-tf5, and needs the repository's
#                    source: MOSS_AUDIO_TOKENIZER_SRC, default target/refsrc/MOSS-Audio-Tokenizer,
#                    which --setup clones),
#                    xy-tokenizer (the repo's 16 kHz release, 8 codebooks; its reference runs on
#                    transformers 5.0.0 too, from the repository's source: XY_TOKENIZER_SRC,
#                    default target/refsrc/XY-Tokenizer, which --setup clones),
#                    tinycodec-1, tinycodec-4 (ours only: the
#                    project's own model), or all (default wavtokenizer,encodec,dac,snac,mimi,xcodec2)
#   --seconds LIST   audio lengths (default 10,60)
#   --threads N      threads for every implementation (default 2)
#   --runs N         timed runs per case, best reported (default 3 up to 30 s, else 2)
#   --python PATH    interpreter with torch, encodec, descript-audio-codec and snac (and
#                    ai-edge-litert for lyra; default target/refbench-venv/bin/python when it
#                    exists, else python3)
#   --setup          create target/refbench-venv: it inherits the system's torch when there is
#                    one, else installs torch and numpy from PyPI into it; then the reference
#                    packages from PyPI without touching torch or numpy
#   --no-pause       do not pause the background training job during the timed cases
#   --out DIR        where results.jsonl, gemm_peak and table.md go (default target/bench_compare)
#   --resume         keep DIR/results.jsonl and run only the cases it has no result for (after an
#                    interrupted run; the table then covers both)
#
# Every case (model x task x length x implementation) runs in its own fresh process, so peak
# memory (VmHWM / ru_maxrss) is that case's own. While a case runs, the background training job
# (`python ... training/train.py`, found by its command line, signalled by process id) is
# stopped with SIGSTOP and continued with SIGCONT right after; a trap continues it on any exit
# (error, Ctrl-C, TERM), and a detached watchdog continues it should this script be killed
# outright. The 1-minute load average before and after each case is recorded and shown.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MODELS=wavtokenizer,encodec,dac,snac,mimi,xcodec2
SECONDS_LIST=10,60
THREADS=2
RUNS=
PYTHON=${PYTHON:-}
SETUP=0
RESUME=0
PAUSE=1
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/bench_compare
TRAIN_PATTERN=${TRAIN_PATTERN:-training/train.py}

while [[ $# -gt 0 ]]; do
    case $1 in
        --models) MODELS=$2; shift 2 ;;
        --seconds) SECONDS_LIST=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --setup) SETUP=1; shift ;;
        --no-pause) PAUSE=0; shift ;;
        --resume) RESUME=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $MODELS == all ]] && MODELS=wavtokenizer,encodec,encodec-24kbps,dac,snac,snac-32khz,mimi,xcodec2,lyra,speechtokenizer,s3tokenizer,s3tokenizer-v1,qwen3-tts,moss-audio-tokenizer,xy-tokenizer
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
if [[ $RESUME == 0 || ! -f $RESULTS ]]; then
    : > "$RESULTS"
    date -u +%FT%TZ > "$OUT/started"
    cut -d' ' -f1-3 /proc/loadavg > "$OUT/start_load"
fi

VENV=${CARGO_TARGET_DIR:-$ROOT/target}/refbench-venv
# transformers 5 for MOSS-Audio-Tokenizer's reference, in a folder of its own put first on that
# reference's PYTHONPATH (qwen-tts pins transformers 4.57.3 in the venv).
TF5_SITE=${CARGO_TARGET_DIR:-$ROOT/target}/refbench-tf5
MOSS_COMMIT=56df9eeb88f7236419dbf6328cd2e51f4dc21eeb
export MOSS_AUDIO_TOKENIZER_SRC=${MOSS_AUDIO_TOKENIZER_SRC:-${CARGO_TARGET_DIR:-$ROOT/target}/refsrc/MOSS-Audio-Tokenizer}
XY_COMMIT=5df5609
export XY_TOKENIZER_SRC=${XY_TOKENIZER_SRC:-${CARGO_TARGET_DIR:-$ROOT/target}/refsrc/XY-Tokenizer}
if [[ $SETUP == 1 ]]; then
    if python3 -c 'import torch, numpy' 2>/dev/null; then
        python3 -m venv --system-site-packages "$VENV"
    else
        # A fresh machine: no system torch, so the venv gets its own (PyPI's Linux wheel).
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install torch numpy
    fi
    constraints=$OUT/constraints.txt
    # (No backslash inside the f-string's braces: Python before 3.12 rejects it.)
    "$VENV/bin/python" -c 'import torch, numpy; v = torch.__version__.split("+")[0]; print(f"torch=={v}\nnumpy=={numpy.__version__}")' > "$constraints"
    "$VENV/bin/pip" install -c "$constraints" encodec descript-audio-codec snac
    # Mimi (moshi) and the X-Codec2 decoder (xcodec2): their pins (torch < 2.10, transformers,
    # torchtune's extras) would replace the system torch, so install them without dependencies
    # plus the few modules the benchmarked code paths import.
    # SpeechTokenizer likewise (its __init__ imports the trainer; the benchmark loads only its
    # model module).
    "$VENV/bin/pip" install --no-deps moshi==0.2.13 xcodec2==0.1.5 speechtokenizer==1.0.1 s3tokenizer==0.3.0 qwen-tts==0.1.1 tqdm torchtune vector-quantize-pytorch einops einx sentencepiece frozendict loguru torch_einops_utils
    # Qwen3-TTS-Tokenizer's reference (qwen-tts, above without its dependencies) runs on the
    # transformers version it pins; transformers itself needs no particular torch.
    "$VENV/bin/pip" install -c "$constraints" transformers==4.57.3
    "$VENV/bin/pip" install -c "$constraints" --target "$TF5_SITE" transformers==5.0.0 \
        || echo "run_all.sh: transformers 5.0.0 did not install; the moss-audio-tokenizer reference column will be skipped" >&2
    # MOSS-Audio-Tokenizer's reference code is not on PyPI: the repository at its pinned commit.
    if [[ ! -e $MOSS_AUDIO_TOKENIZER_SRC ]]; then
        { git clone -q https://github.com/OpenMOSS/MOSS-Audio-Tokenizer "$MOSS_AUDIO_TOKENIZER_SRC" \
            && git -C "$MOSS_AUDIO_TOKENIZER_SRC" checkout -q "$MOSS_COMMIT"; } \
            || echo "run_all.sh: could not clone MOSS-Audio-Tokenizer; set MOSS_AUDIO_TOKENIZER_SRC to a checkout, or its reference column will be skipped" >&2
    fi
    # XY-Tokenizer's likewise (the commit the fixtures were made with); it also needs PyYAML
    # for its config and torchaudio (for two mel-scale helpers) at the venv's torch version.
    "$VENV/bin/pip" install -c "$constraints" pyyaml scipy torchaudio \
        || echo "run_all.sh: pyyaml, scipy or torchaudio did not install; the xy-tokenizer reference column will be skipped" >&2
    if [[ ! -e $XY_TOKENIZER_SRC ]]; then
        { git clone -q https://github.com/gyt1145028706/XY-Tokenizer "$XY_TOKENIZER_SRC" \
            && git -C "$XY_TOKENIZER_SRC" checkout -q "$XY_COMMIT"; } \
            || echo "run_all.sh: could not clone XY-Tokenizer; set XY_TOKENIZER_SRC to a checkout, or its reference column will be skipped" >&2
    fi
    # Lyra's reference: Google's LiteRT runtime (the TFLite interpreter; numpy is its only
    # heavy dependency, held at the system's version). On its own so that a failure here
    # leaves the other models' venv as it was.
    "$VENV/bin/pip" install -c "$constraints" ai-edge-litert \
        || echo "run_all.sh: ai-edge-litert did not install; the lyra reference column will be skipped" >&2
fi
if [[ -z $PYTHON ]]; then
    if [[ -x $VENV/bin/python ]]; then PYTHON=$VENV/bin/python; else PYTHON=python3; fi
fi

# ---------------------------------------------------------------------------------------------
# Pausing the background training job (by process id; never killed).

PAUSED_FILE=$OUT/.paused_pids
: > "$PAUSED_FILE"
PAUSED=()

training_pids() {
    local pid comm
    for pid in $(pgrep -f -- "$TRAIN_PATTERN" 2>/dev/null || true); do
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        [[ $comm == python* ]] || continue
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$TRAIN_PATTERN" || continue
        echo "$pid"
    done
}

pause_training() {
    [[ $PAUSE == 1 ]] || return 0
    local pid
    PAUSED=()
    for pid in $(training_pids); do
        if kill -STOP "$pid" 2>/dev/null; then PAUSED+=("$pid"); fi
    done
    printf '%s\n' "${PAUSED[@]}" > "$PAUSED_FILE"
}

resume_training() {
    local pid
    for pid in "${PAUSED[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
    PAUSED=()
    : > "$PAUSED_FILE" 2>/dev/null || true
}

trap 'resume_training' EXIT
trap 'resume_training; exit 130' INT
trap 'resume_training; exit 143' TERM HUP

if [[ $PAUSE == 1 ]]; then
    # Should this script die without running its traps (SIGKILL), continue whatever it left
    # stopped. Detached, so that a signal to our process group does not take it along.
    setsid bash -c '
        while kill -0 "$1" 2>/dev/null; do sleep 2; done
        while read -r p; do [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; done < "$2"
        rm -f "$2"' watchdog "$$" "$PAUSED_FILE" < /dev/null > /dev/null 2>&1 &
    n=$(training_pids | wc -l)
    echo "run_all.sh: $n training process(es) matching '$TRAIN_PATTERN' will be paused during each timed case" >&2
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
# Build the two Rust benches and find their executables.

BIN=$OUT/bin
if [[ $RESUME == 1 && -x $BIN/codec_bench && -x $BIN/candle_reference && -x $BIN/kernel_bench ]]; then
    # The same executables as the interrupted run, even if the sources changed since.
    echo "run_all.sh: resuming with the executables in $BIN" >&2
else
    echo "run_all.sh: building the benches ..." >&2
    # Ours through cargo bench; candle-transformers' in its own package (outside the workspace,
    # so that `cargo test` never compiles it), with its own target folder.
    find_exe() {  # NAME, then the cargo command (with --message-format=json) that builds it
        local name=$1; shift
        "$@" --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])
' "$name"
    }
    built_ours=$(find_exe codec_bench cargo bench --no-run --bench codec_bench)
    built_kernels=$(find_exe kernel_bench cargo bench --no-run --bench kernel_bench)
    built_candle=$(find_exe candle_reference cargo build --release --manifest-path benches/candle-reference/Cargo.toml)
    if [[ -z $built_ours || -z $built_kernels || -z $built_candle ]]; then
        echo "run_all.sh: building the benches failed; run them by hand to see why:" >&2
        echo "  cargo bench --no-run --bench codec_bench --bench kernel_bench" >&2
        echo "  cargo build --release --manifest-path benches/candle-reference/Cargo.toml" >&2
        exit 1
    fi
    # Copies, so that a rebuild in target/ by someone else during the run changes nothing.
    mkdir -p "$BIN"
    cp "$built_ours" "$BIN/codec_bench"
    cp "$built_kernels" "$BIN/kernel_bench"
    cp "$built_candle" "$BIN/candle_reference"
    echo "git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates src benches tests Cargo.toml 2>/dev/null || echo ' + uncommitted changes'), built $(date -u +%FT%TZ)" > "$BIN/build_info"
fi
OURS=$BIN/codec_bench
CANDLE=$BIN/candle_reference

# The Python packages each model's reference needs, looked up without importing them (the
# script itself handles torchaudio's CUDA check at import); none listed: no reference package.
reference_modules() {
    case $1 in
        encodec|encodec-24kbps) echo torch encodec ;;
        dac) echo torch dac ;;
        snac|snac-32khz) echo torch snac ;;
        mimi) echo torch moshi ;;
        xcodec2) echo torch xcodec2 torchtune ;;
        speechtokenizer) echo torch speechtokenizer einops ;;
        s3tokenizer|s3tokenizer-v1) echo torch s3tokenizer einops tqdm ;;
        qwen3-tts) echo torch transformers qwen_tts ;;
        moss-audio-tokenizer) echo torch transformers ;;
        xy-tokenizer) echo torch transformers torchaudio scipy yaml ;;
        lyra) echo numpy ai_edge_litert ;;
    esac
}
pythonpath_for() { # model: what goes first on the reference's PYTHONPATH
    if [[ ( $1 == moss-audio-tokenizer || $1 == xy-tokenizer ) && -d $TF5_SITE ]]; then echo "$TF5_SITE${PYTHONPATH:+:$PYTHONPATH}"; else echo "${PYTHONPATH:-}"; fi
}
reference_ready() { # model
    local modules
    modules=$(reference_modules "$1")
    [[ -z $modules ]] && return 0
    [[ $1 == moss-audio-tokenizer && ! -e $MOSS_AUDIO_TOKENIZER_SRC ]] && return 1
    [[ $1 == xy-tokenizer && ! -e $XY_TOKENIZER_SRC ]] && return 1
    # shellcheck disable=SC2086  # one word per module
    PYTHONPATH=$(pythonpath_for "$1") "$PYTHON" -c 'import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)' $modules > /dev/null 2>&1
}
for model in ${MODELS//,/ }; do
    if ! reference_ready "$model"; then
        echo "run_all.sh: $PYTHON lacks $(reference_modules "$model"); the $model reference column will be skipped (try --setup)" >&2
    fi
done

# ---------------------------------------------------------------------------------------------
# The cases.

run_one() { # impl model task seconds
    local impl=$1 model=$2 task=$3 seconds=$4 tag line rc=0 before after cmd=()
    local runs_arg=()
    [[ -n $RUNS ]] && runs_arg=(--runs "$RUNS")
    case $impl in
        ours) tag=CODEC_BENCH_RESULT; cmd=("$OURS" --case "$task" --model "$model" --seconds "$seconds" --threads "$THREADS" "${runs_arg[@]}") ;;
        candle) tag=CANDLE_REF_RESULT; cmd=("$CANDLE" --case "$task" --model "$model" --seconds "$seconds" --threads "$THREADS" "${runs_arg[@]}") ;;
        reference) tag=REF_RESULT; cmd=("$PYTHON" benches/reference/bench_reference.py --case "$task" --models "$model" --seconds "$seconds" --threads "$THREADS" "${runs_arg[@]}") ;;
    esac
    if [[ $RESUME == 1 ]] && python3 -c '
import json, sys
impl, model, task, secs = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
names = {impl, "candle-transformers"} if impl == "candle" else {impl}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("impl") in names and r.get("model_key") == model and r.get("task") == task \
            and float(r.get("audio_s", -1)) == secs and not r.get("failed"):
        sys.exit(0)
sys.exit(1)' "$RESULTS" "$impl" "$model" "$task" "$seconds"; then
        echo "== $impl $model $task ${seconds} s: already in $RESULTS" >&2
        return
    fi
    if [[ $impl != ours && $model == tinycodec-* ]]; then
        echo "{\"impl\": \"$impl\", \"model_key\": \"$model\", \"task\": \"$task\", \"audio_s\": $seconds, \"skipped\": \"the project's own model: no other implementation\"}" >> "$RESULTS"
        return
    fi
    if [[ $impl == candle && ( $model == wavtokenizer || $model == xcodec2 || $model == lyra || $model == speechtokenizer || $model == s3tokenizer || $model == s3tokenizer-v1 || $model == qwen3-tts || $model == moss-audio-tokenizer || $model == xy-tokenizer ) ]]; then
        echo "{\"impl\": \"candle-transformers\", \"model_key\": \"$model\", \"task\": \"$task\", \"audio_s\": $seconds, \"skipped\": \"not in candle-transformers\"}" >> "$RESULTS"
        return
    fi
    if [[ $impl == reference ]] && ! reference_ready "$model"; then
        echo "{\"impl\": \"reference\", \"model_key\": \"$model\", \"task\": \"$task\", \"audio_s\": $seconds, \"skipped\": \"reference packages not installed ($(reference_modules "$model"))\"}" >> "$RESULTS"
        return
    fi
    echo "== $impl $model $task ${seconds} s" >&2
    pause_training
    before=$(loadavg)
    line=$(PYTHONPATH=$(pythonpath_for "$model") RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS \
        MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS PYTHONWARNINGS=ignore \
        "${cmd[@]}" < /dev/null | grep "^$tag " | head -n1) || rc=$?
    after=$(loadavg)
    resume_training
    if [[ -z $line ]]; then
        echo "run_all.sh: $impl $model $task ${seconds} s failed" >&2
        echo "{\"impl\": \"$impl\", \"model_key\": \"$model\", \"task\": \"$task\", \"audio_s\": $seconds, \"failed\": true}" >> "$RESULTS"
        return
    fi
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r["impl"] = sys.argv[2]
r["loadavg_before"], r["loadavg_after"] = sys.argv[3], sys.argv[4]
print(json.dumps(r))' "${line#"$tag "}" "$impl" "$before" "$after" >> "$RESULTS"
}

# The machine's float32 GEMM peak on these threads, the denominator of the table's "% of
# peak" column (benches/kernel_bench.rs; once per run, kept by --resume).
if [[ ! -s $OUT/gemm_peak ]]; then
    pause_training
    "$BIN/kernel_bench" --threads "$THREADS" --peak-only | tee "$OUT/gemm_peak.log" >&2
    resume_training
    sed -n 's/^peak: \([0-9.]*\) GFLOP.*/\1/p' "$OUT/gemm_peak.log" > "$OUT/gemm_peak"
fi
GEMM_PEAK=$(cat "$OUT/gemm_peak")

IFS=, read -r -a model_list <<< "$MODELS"
IFS=, read -r -a seconds_list <<< "$SECONDS_LIST"
START=$(cat "$OUT/started")
START_LOAD=$(cat "$OUT/start_load")
for model in "${model_list[@]}"; do
    for seconds in "${seconds_list[@]}"; do
        tasks=(encode decode)
        # Streaming models also run one frame at a time.
        [[ $model == mimi || $model == lyra ]] && tasks+=(encode-stream decode-stream)
        [[ $model == s3tokenizer || $model == s3tokenizer-v1 ]] && tasks=(encode)  # encode only: its decoder is CosyVoice's
        [[ $model == tinycodec-* ]] && tasks=(encode decode encode+decode)
        for task in "${tasks[@]}"; do
            for impl in ours reference candle; do
                run_one "$impl" "$model" "$task" "$seconds"
            done
        done
    done
done

# ---------------------------------------------------------------------------------------------
# The table.

{
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    echo "<!-- benches/run_all.sh --models $MODELS --seconds $SECONDS_LIST --threads $THREADS${RUNS:+ --runs $RUNS}; started $START, finished $(date -u +%FT%TZ)$([[ $RESUME == 1 ]] && echo ' (resumed)'); $(nproc) CPUs: $cpu; $(cat "$BIN/build_info" 2>/dev/null || echo 'build unknown') -->"
    if [[ $PAUSE == 1 ]]; then
        pause_note="the background training job was paused (SIGSTOP/SIGCONT) during each case"
    else
        pause_note="the background training job was NOT paused (--no-pause)"
    fi
    python3 - "$RESULTS" "$THREADS" "$START_LOAD" "$pause_note" "$MODELS" "$GEMM_PEAK" <<'EOF'
import json, sys

path, threads, start_load, pause_note, order, gemm_peak = sys.argv[1:7]
gemm_peak = float(gemm_peak) if gemm_peak else None
order = order.split(",")
rows = [json.loads(l) for l in open(path) if l.strip()]
LABELS = {
    "wavtokenizer": "WavTokenizer-75",
    "encodec": "EnCodec 24 kHz, 6 kbps (8 cb)",
    "encodec-24kbps": "EnCodec 24 kHz, 24 kbps (32 cb)",
    "dac": "DAC 44.1 kHz (9 cb)",
    "snac": "SNAC 24 kHz",
    "snac-32khz": "SNAC 32 kHz",
    "mimi": "Mimi (8 cb)",
    "xcodec2": "X-Codec2",
    "lyra": "Lyra v2 16 kHz, 3.2 kbps (16 q)",
    "speechtokenizer": "SpeechTokenizer 16 kHz (8 cb)",
    "s3tokenizer": "S3Tokenizer v2 (encode only)",
    "s3tokenizer-v1": "S3Tokenizer v1 50 Hz (encode only)",
    "qwen3-tts": "Qwen3-TTS-Tokenizer-12Hz (16 cb)",
    "moss-audio-tokenizer": "MOSS-Audio-Tokenizer 1.77 B (32 cb)",
    "xy-tokenizer": "XY-Tokenizer 16 kHz (8 cb)",
    "tinycodec-1": "tinycodec, 1 stage",
    "tinycodec-4": "tinycodec, 4 stages",
}
TASKS = ["encode", "decode", "encode+decode", "encode-stream", "decode-stream"]
cases, by = [], {}
for r in rows:
    key = (r["model_key"], r["task"], float(r["audio_s"]))
    if key not in by:
        cases.append(key)
    by.setdefault(key, {})[r["impl"]] = r
# The order asked for: models as listed, then length, encode before decode (a resumed run
# appends its cases after the earlier ones).
cases.sort(key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[2],
                          TASKS.index(k[1]) if k[1] in TASKS else len(TASKS)))

notes = {}
def cell(r):
    if r is None:
        return "—", "—"
    if r.get("failed"):
        return "failed", "—"
    if "skipped" in r:
        mark = notes.setdefault(r["skipped"], len(notes) + 1)
        return f"n/a[^{mark}]", "—"
    return f"{r['rtf']:.2f}", f"{r['peak_rss_mib']:.0f}"

def load(r):
    return r.get("loadavg_before", "").split(" ")[0] if r and "loadavg_before" in r else "–"

print()
print(f"| model | task | audio | ours RTF | ours peak MiB | reference RTF | reference peak MiB "
      f"| candle-transformers RTF | candle-transformers peak MiB | load 1m (ours/ref/candle) |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
for key in cases:
    model, task, secs = key
    d = by[key]
    o, p, c = d.get("ours"), d.get("reference"), d.get("candle-transformers", d.get("candle"))
    cells = [*cell(o), *cell(p), *cell(c)]
    loads = "/".join(load(x) for x in (o, p, c))
    print(f"| {LABELS.get(model, model)} | {task} | {secs:g} s | " + " | ".join(cells) + f" | {loads} |")
print()
print(f"RTF = seconds of audio per second of wall time (higher is faster), best of the runs; "
      f"peak MiB = the case's own process's peak resident memory (model, input and all); "
      f"{threads} threads everywhere; random weights at the published sizes (Lyra: its published "
      f"weights, the TFLite files); one fresh process per case; "
      f"{pause_note}; load average (1/5/15 min) when the run started {start_load}; "
      f"the last column has each case's 1-minute load average as it started.")

def cpu(r):
    c = (r or {}).get("cpu") or {}
    if "user_s_per_run" not in c:
        return "—"
    return f"{c['user_s_per_run'] + c['sys_s_per_run']:.1f}"

print()
print("CPU seconds per run (user + system; with 2 threads at most 2 x wall): where other work "
      "shared the CPUs, wall time grows but CPU time much less.")
print()
print("| model | task | audio | ours | reference | candle-transformers |")
print("|---|---|---|---:|---:|---:|")
for key in cases:
    model, task, secs = key
    d = by[key]
    o, p, c = d.get("ours"), d.get("reference"), d.get("candle-transformers", d.get("candle"))
    print(f"| {LABELS.get(model, model)} | {task} | {secs:g} s | {cpu(o)} | {cpu(p)} | {cpu(c)} |")
stream = [k for k in cases if k[1].endswith("-stream")]
if stream:
    def frame(r):
        f = (r or {}).get("frame_compute_ms") or {}
        if "median" not in f:
            return "—"
        nd = 0 if f["median"] >= 10 else 2  # Lyra's 20 ms frames take well under 1 ms
        return f"{f['median']:.{nd}f} / {f['p95']:.{nd}f} / {f['max']:.{nd}f}"
    def frame_len(d):
        for r in d.values():
            f = (r or {}).get("frame_compute_ms") or {}
            if "frame_ms" in f:
                return f"{f['frame_ms']:g} ms"
        return "—"
    print()
    print("Streaming, compute per frame (ms, median / p95 / max; a frame must take less than its "
          "own length (frame column: 80 ms for Mimi, 20 ms for Lyra) to keep up; latency = one "
          "frame of audio + this):")
    print()
    print("| model | task | audio | frame | ours | reference | candle-transformers |")
    print("|---|---|---|---:|---:|---:|---:|")
    for key in stream:
        model, task, secs = key
        d = by[key]
        o, p, c = d.get("ours"), d.get("reference"), d.get("candle-transformers", d.get("candle"))
        print(f"| {LABELS.get(model, model)} | {task} | {secs:g} s | {frame_len(d)} | {frame(o)} | {frame(p)} | {frame(c)} |")

# GFLOP per second of audio of the reference models at their published sizes, counted with
# PyTorch's FlopCounterMode (convolutions, matmuls, LSTM and attention; element-wise ops and
# FFTs not counted): issue 9's table. Streaming runs the same layers.
FLOPS = {
    ("encodec", "encode"): 3.1, ("encodec", "decode"): 3.0,
    ("mimi", "encode"): 5.4, ("mimi", "decode"): 5.5,
    ("mimi", "encode-stream"): 5.4, ("mimi", "decode-stream"): 5.5,
    ("snac", "encode"): 4.8, ("snac", "decode"): 9.8,
    ("dac", "encode"): 61.0, ("dac", "decode"): 139.0,
    ("wavtokenizer", "encode"): 3.5, ("wavtokenizer", "decode"): 9.6,
}
limit = [k for k in cases if (k[0], k[1]) in FLOPS]
if limit and gemm_peak:
    def rate(r, gflop):
        if not r or "rtf" not in r:
            return None
        return gflop * r["rtf"]
    def pct(v):
        return "—" if v is None else f"{100 * v / gemm_peak:.1f} %"
    print()
    print(f"Against the limit: GFLOP per audio second (the reference's, FlopCounterMode), the rate "
          f"each implementation sustains (that times its RTF) as a share of this machine's "
          f"measured float32 GEMM peak on {threads} threads, {gemm_peak:.0f} GFLOP/s "
          f"(`cargo bench --bench kernel_bench -- --peak-only`), and the speed ratio ours / reference:")
    print()
    print("| model | task | audio | GFLOP / audio s | ours % of peak | reference % of peak | ours / reference |")
    print("|---|---|---|---:|---:|---:|---:|")
    for key in limit:
        model, task, secs = key
        d = by[key]
        o, p = d.get("ours"), d.get("reference")
        g = FLOPS[(model, task)]
        ratio = f"{o['rtf'] / p['rtf']:.2f}" if o and p and "rtf" in o and "rtf" in p else "—"
        print(f"| {LABELS.get(model, model)} | {task} | {secs:g} s | {g:g} | {pct(rate(o, g))} "
              f"| {pct(rate(p, g))} | {ratio} |")
for text, n in notes.items():
    print(f"\n[^{n}]: {text}")
EOF
} | tee "$OUT/table.md"
echo "run_all.sh: results in $RESULTS, table in $OUT/table.md" >&2
