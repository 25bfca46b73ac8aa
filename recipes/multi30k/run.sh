#!/usr/bin/env bash
# Multi30k task 1 end to end: verified data -> one tokenizer -> a model per seed, the seeds trained
# side by side -> the average of each model's last 3 checkpoints -> beam search with the models
# as an ensemble on val and test_2016_flickr -> sacreBLEU -> results.md in the run directory.
#
#   recipes/multi30k/run.sh en-de [DATA_DIR] [--set section.key=value ...]
#
# PAIR is en-de, de-en, en-fr, fr-en, en-cs or cs-en. DATA_DIR holds the official .gz files (omit it to
# download them). RUN_DIR (default runs/multi30k-PAIR) may already hold a run: training resumes.
# SEEDS (default "1234 1235") names the models: each trains in RUN_DIR/seed-N with the machine's
# cores shared out among them (SEEDS=1234 trains one model on all of them).
set -euo pipefail

# Steps run through start_step / wait_steps / run_step, so that Ctrl-C or kill reaches them.
. "$(dirname "${BASH_SOURCE[0]}")/../steps.sh"

pair=${1:?usage: run.sh PAIR [DATA_DIR] [--set ...]}
shift
data_dir=""
if [[ $# -gt 0 && $1 != --* ]]; then data_dir=$1; shift; fi
src=${pair%-*}
tgt=${pair#*-}
here=$(cd "$(dirname "$0")" && pwd)
run_dir=${RUN_DIR:-runs/multi30k-$pair}
mkdir -p "$run_dir"
if [[ -d $run_dir/checkpoints ]]; then
  echo "run.sh: $run_dir holds a run of the one-model recipe (its checkpoints/ is at the top);" \
    "this recipe trains RUN_DIR/seed-N for each of SEEDS: give another RUN_DIR" >&2
  exit 2
fi

read -ra seeds <<< "${SEEDS-1234 1235}"
(( ${#seeds[@]} )) || { echo "run.sh: SEEDS is empty; give at least one seed, e.g. SEEDS=1234" >&2; exit 2; }
if [[ $(printf '%s\n' "${seeds[@]}" | sort | uniq -d) ]]; then
  echo "run.sh: SEEDS names a seed twice (${seeds[*]}); each seed is one model in RUN_DIR/seed-N" >&2
  exit 2
fi
cores=$(nproc 2>/dev/null || echo 1)
threads=$(( cores / ${#seeds[@]} > 0 ? cores / ${#seeds[@]} : 1 ))
members=()
for seed in "${seeds[@]}"; do members+=("$run_dir/seed-$seed"); done

run_step python "$here/prepare.py" ${data_dir:+--data-dir "$data_dir"} --languages "$src,$tgt"
# One tokenizer for every seed: an ensemble's models must agree on piece ids.
run_step python "$here/tokenizer.py" "$here/$pair.yaml" "$run_dir" "$@"
for member in "${members[@]}"; do
  if [[ ! -d $member/tokenizer ]]; then
    mkdir -p "$member"
    rm -rf "$member/.tokenizer.tmp"
    cp -r "$run_dir/tokenizer" "$member/.tokenizer.tmp"
    mv "$member/.tokenizer.tmp" "$member/tokenizer"
  fi
done

# The seeds train at the same time, each on its share of the cores: on 2 cores, two one-thread
# runs make 1.41x the steps of one two-thread run (README.md). nmt train keeps its own
# timestamped log, RUN_DIR/seed-N/train.log; the first seed's progress is printed here.
# train_wall_seconds.txt sums every run.sh that trained this RUN_DIR, a stopped one too (the EXIT
# trap), so that a resumed run's results.md counts all of its training, not the last part.
start=$(date +%s)
add_train_wall() {
  local before
  before=$(cat "$run_dir/train_wall_seconds.txt" 2>/dev/null || echo 0)
  echo "$(( before + $(date +%s) - start ))" > "$run_dir/.train_wall_seconds.tmp"
  mv "$run_dir/.train_wall_seconds.tmp" "$run_dir/train_wall_seconds.txt"
}
trap add_train_wall EXIT
for i in "${!seeds[@]}"; do
  command=(nmt --threads "$threads" train --config "$here/$pair.yaml" --run-dir "${members[i]}" "$@"
    --set "training.seed=${seeds[i]}")
  if (( i == 0 )); then start_step "${command[@]}"; else start_step "${command[@]}" > /dev/null; fi
done
wait_steps
trap - EXIT
add_train_wall

# Decode with the mean of each model's last 3 checkpoints' weights: +0.95 BLEU on en-de test over
# the best checkpoint (paired bootstrap p = 0.002, README.md). With training.ema_decay, nmt average
# takes the mean of their moving averages instead, and says which it averaged.
averaged=()
checkpoints=()
for member in "${members[@]}"; do
  run_step nmt average --run-dir "$member" --last 3 > "$member/.average.txt.tmp"
  mv "$member/.average.txt.tmp" "$member/average.txt"
  cat "$member/average.txt"
  averaged+=("$(sed -n 's/^averaged checkpoint: //p' "$member/average.txt")")
  checkpoints+=(--checkpoint "${averaged[-1]}")
done
printf '%s\n' "${averaged[@]}" > "$run_dir/.decoded_checkpoints.txt.tmp"
mv "$run_dir/.decoded_checkpoints.txt.tmp" "$run_dir/decoded_checkpoints.txt"

# val and test_2016_flickr always; the other official test sets when prepare.py found them (a
# download does; a DATA_DIR may lack them): scores on sets nobody tuned on. A set not decoded
# now loses the translation and scores an earlier run left, so results.md never mixes models.
splits=(val test_2016_flickr)
for split in test_2017_flickr test_2017_mscoco test_2018_flickr; do
  if [[ -f $here/data/$split.$src.gz && -f $here/data/$split.$tgt.gz ]]; then
    splits+=("$split")
  else
    rm -f "$run_dir/$split.$tgt" "$run_dir/$split.scores.json" "$run_dir/$split.decode_wall_seconds.txt"
  fi
done
# Results are written under a temporary name and renamed, so a kill never leaves half a file.
for split in "${splits[@]}"; do
  start=$(date +%s)
  run_step nmt evaluate --run-dir "${members[0]}" "${checkpoints[@]}" --source "$here/data/$split.$src.gz" \
    --ref "$here/data/$split.$tgt.gz" --hyp "$run_dir/$split.$tgt" --lang "$tgt" --json \
    > "$run_dir/.$split.scores.json.tmp"
  mv "$run_dir/.$split.scores.json.tmp" "$run_dir/$split.scores.json"
  echo "$(( $(date +%s) - start ))" > "$run_dir/.$split.decode.tmp"
  mv "$run_dir/.$split.decode.tmp" "$run_dir/$split.decode_wall_seconds.txt"
done
run_step python "$here/results.py" "$run_dir" "${members[@]}" > "$run_dir/.results.md.tmp"
mv "$run_dir/.results.md.tmp" "$run_dir/results.md"
cat "$run_dir/results.md"
