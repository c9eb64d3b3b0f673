#!/usr/bin/env bash
# Corpus throughput on one machine: `codec encode DIR OUT` (one process, model loaded once,
# reading overlapped with the model) against one `codec encode FILE OUT` process per file, same
# files, same thread count, in one run. Prints hours of audio per hour of wall time for both.
#
#   benches/corpus_bench.sh                       # ../shared/audio/eval, default model, 2 threads
#   benches/corpus_bench.sh DIR [THREADS] [MODEL]
#
# Needs a release build (cargo build --release -p codec-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-../shared/audio/eval}
THREADS=${2:-2}
MODEL=${3:-lyra-v2}
BIN=target/release/codec
[ -x "$BIN" ] || { echo "build first: cargo build --release -p codec-cli" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "corpus_bench: $DIR, model $MODEL, $THREADS threads, load average $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s.%N)
"$BIN" --threads "$THREADS" encode -m "$MODEL" "$DIR" "$OUT/corpus" 2> "$OUT/corpus.log"
corpus=$(echo "$(date +%s.%N) - $start" | bc)
hours=$(grep -o '[0-9.]* h of audio' "$OUT/corpus.log" | cut -d' ' -f1)

mkdir -p "$OUT/each"
start=$(date +%s.%N)
find "$DIR" -type f | sort | while read -r f; do
    case "${f,,}" in
        *.wav|*.flac|*.mp3|*.ogg|*.opus|*.m4a|*.aiff|*.aif|*.caf|*.webm|*.mkv|*.mp4|*.aac|*.oga|*.wave)
            "$BIN" --threads "$THREADS" encode -m "$MODEL" "$f" "$OUT/each/$(basename "$f").tok" 2>/dev/null ;;
    esac
done
each=$(echo "$(date +%s.%N) - $start" | bc)

printf '| mode | wall s | hours of audio per hour |\n|---|---:|---:|\n'
printf '| corpus mode (one process) | %.1f | %.0f |\n' "$corpus" "$(echo "$hours * 3600 / $corpus" | bc -l)"
printf '| one process per file | %.1f | %.0f |\n' "$each" "$(echo "$hours * 3600 / $each" | bc -l)"
echo "audio: $hours h; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
