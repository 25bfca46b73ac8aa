#!/usr/bin/env bash
# WMT14 English->German end to end, GNMT's benchmark (Wu et al., 2016): the cleaned official
# training corpora -> one tokenizer and the tokenized corpus (nmt prepare) -> nmt train -> the
# average of the last 3 checkpoints -> beam search on newstest2013 (dev) and newstest2014
# (test) -> sacreBLEU with its signatures -> results.md in the run directory.
#
#   recipes/wmt14/run.sh [DATA_DIR] [--set section.key=value ...]
#
# DATA_DIR holds the extracted plain files that README.md names (omit it to download the
# archives and get the test sets through sacreBLEU). RUN_DIR (default runs/wmt14-en-de) may
# already hold a run: training resumes. The --set flags go to nmt prepare and nmt train alike
# (they must agree, or training would prepare the corpus again).
set -euo pipefail

# Steps run through start_step / wait_steps / run_step, so that Ctrl-C or kill reaches them.
. "$(dirname "${BASH_SOURCE[0]}")/../steps.sh"

data_dir=""
if [[ $# -gt 0 && $1 != --* ]]; then data_dir=$1; shift; fi
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
config=$here/en-de.yaml
run_dir=${RUN_DIR:-runs/wmt14-en-de}
mkdir -p "$run_dir"

# 1. The official files, the training corpora cleaned (data/cleaning.md says what was dropped).
run_step python "$here/prepare.py" ${data_dir:+--data-dir "$data_dir"}
# 2. The tokenizer, trained once, and every corpus tokenized once into binary shards.
run_step nmt prepare --config "$config" --run-dir "$run_dir" "$@"

# 3. Training. train_wall_seconds.txt sums every run.sh that trained this RUN_DIR, a stopped
# one too (the EXIT trap), so that a resumed run's results.md counts all of its training.
start=$(date +%s)
add_train_wall() {
  local before
  before=$(cat "$run_dir/train_wall_seconds.txt" 2>/dev/null || echo 0)
  echo "$(( before + $(date +%s) - start ))" > "$run_dir/.train_wall_seconds.tmp"
  mv "$run_dir/.train_wall_seconds.tmp" "$run_dir/train_wall_seconds.txt"
}
trap add_train_wall EXIT
run_step nmt train --config "$config" --run-dir "$run_dir" "$@"
trap - EXIT
add_train_wall

# 4. The mean of the last 3 checkpoints' weights (+0.95 BLEU over the best checkpoint on the
# Multi30k recipe's test set, recipes/multi30k/README.md; not measured on WMT14 yet).
# Results are written under a temporary name and renamed, so a kill never leaves half a file.
run_step nmt average --run-dir "$run_dir" --last 3 > "$run_dir/.average.txt.tmp"
mv "$run_dir/.average.txt.tmp" "$run_dir/average.txt"
cat "$run_dir/average.txt"
averaged=$(sed -n 's/^averaged checkpoint: //p' "$run_dir/average.txt")
[[ -n $averaged ]] || { echo "run.sh: nmt average named no averaged checkpoint" >&2; exit 1; }

# 5. Translate dev and test with the run's beam search; 6. score them with sacreBLEU.
for split in newstest2013 newstest2014; do
  start=$(date +%s)
  run_step nmt translate --run-dir "$run_dir" --checkpoint "$averaged" \
    --input "$data/$split.en.gz" --output "$run_dir/$split.de"
  echo "$(( $(date +%s) - start ))" > "$run_dir/.$split.decode.tmp"
  mv "$run_dir/.$split.decode.tmp" "$run_dir/$split.decode_wall_seconds.txt"
  run_step nmt evaluate --hyp "$run_dir/$split.de" --ref "$data/$split.de.gz" --lang de --json \
    > "$run_dir/.$split.scores.json.tmp"
  mv "$run_dir/.$split.scores.json.tmp" "$run_dir/$split.scores.json"
done
run_step python "$here/results.py" "$run_dir" "$data" > "$run_dir/.results.md.tmp"
mv "$run_dir/.results.md.tmp" "$run_dir/results.md"
cat "$run_dir/results.md"
