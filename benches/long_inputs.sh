#!/usr/bin/env bash
# Long inputs: time and peak memory of encode and decode at growing lengths, through the
# pipeline's windows (codec_core::long_form), for the published-size models with random weights.
# Linear time shows as a constant real-time factor; bounded memory as a peak that stops growing
# with the length (beyond the input and output buffers themselves).
#
#   benches/long_inputs.sh                                   # encodec,mimi,snac,wavtokenizer; 10,60,600,1800 s
#   benches/long_inputs.sh --models dac --seconds 10,60,180
#   benches/long_inputs.sh --window-seconds 0 --seconds 10,60   # one pass, for comparison
#
# One child process per case (its own VmHWM), 2 threads, one run each; the load average before
# each case is recorded. Results: target/long_inputs/results.jsonl, and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

MODELS=encodec,mimi,snac,wavtokenizer
SECONDS_LIST=10,60,600,1800
THREADS=2
WINDOW=30
while [[ $# -gt 0 ]]; do
    case $1 in
        --models) MODELS=$2; shift 2 ;;
        --seconds) SECONDS_LIST=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --window-seconds) WINDOW=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "long_inputs.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

cargo bench --bench codec_bench --no-run >&2
BIN=$(ls -t target/release/deps/codec_bench-* | grep -v '\.d$' | head -1)
OUT=target/long_inputs
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

IFS=, read -r -a models <<< "$MODELS"
IFS=, read -r -a lengths <<< "$SECONDS_LIST"
for model in "${models[@]}"; do
    for seconds in "${lengths[@]}"; do
        for task in encode decode; do
            load=$(cut -d' ' -f1-3 /proc/loadavg)
            echo "== $model $task $seconds s (load $load)" >&2
            line=$(RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS "$BIN" --case "$task" \
                --model "$model" --seconds "$seconds" --threads "$THREADS" --runs 1 \
                --window-seconds "$WINDOW" | sed -n 's/^CODEC_BENCH_RESULT //p') || true
            if [[ -z $line ]]; then
                echo "{\"model_key\": \"$model\", \"task\": \"$task\", \"audio_s\": $seconds, \"failed\": true}" >> "$RESULTS"
            else
                python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["load_average_before"]=sys.argv[2]; print(json.dumps(r))' \
                    "$line" "$load" >> "$RESULTS"
            fi
        done
    done
done

python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | task | audio | windowed | RTF | peak RSS (MiB) | load avg before |")
print("|---|---|---:|---|---:|---:|---|")
for r in rows:
    if r.get("failed"):
        print(f"| {r['model_key']} | {r['task']} | {r['audio_s']} s | | failed | | |")
        continue
    print(f"| {r['model']} | {r['task']} | {r['audio_s']:g} s | {'yes' if r['windowed'] else 'no'} "
          f"| {r['rtf']:.2f} | {r['peak_rss_mib']:.0f} | {r['load_average_before']} |")
EOF
