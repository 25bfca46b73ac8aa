# Shared by the recipes' run.sh: run each step in the background while the script waits.
# Sourced, not run: `. "$(dirname "${BASH_SOURCE[0]}")/../steps.sh"` from recipes/NAME/run.sh.
#
# Each step runs in the background while this script waits, so that Ctrl-C or `kill` of this
# script stops the steps too instead of leaving them running alone: each gets SIGTERM, on which
# `nmt train` saves a checkpoint and prints how to resume, and the script exits 130 (Ctrl-C) or
# 143 (SIGTERM). TERM for both: bash starts background steps with SIGINT ignored, and Ctrl-C on a
# terminal reaches them directly as well, so a forwarded SIGINT would either be lost or come twice.
children=()
stopped=0
stop() {
  stopped=$1
  if (( ${#children[@]} )); then kill -TERM "${children[@]}" 2>/dev/null || true; else exit "$stopped"; fi
}
trap 'stop 130' INT
trap 'stop 143' TERM
start_step() {
  if (( stopped )); then exit "$stopped"; fi  # Ctrl-C between two starts: start no more
  "$@" &
  children+=($!)
}
# Waits for every started step, looking each second; the first to fail stops the others, and its
# status is the script's. (Not `wait -n`: when two steps end at once it reports one, and bash
# may already have reaped the other, whose status is then lost to a `kill -0` check.)
wait_steps() {
  local status=0 code pid
  local -a pending=("${children[@]}") alive
  while (( ${#pending[@]} )); do
    alive=()
    for pid in "${pending[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); continue; fi
      code=0
      wait "$pid" || code=$?
      if (( code && !stopped && !status )); then
        status=$code
        kill -TERM "${children[@]}" 2>/dev/null || true
      fi
    done
    pending=(${alive[@]+"${alive[@]}"})
    # A trapped signal ends this wait early; the loop then looks again.
    if (( ${#pending[@]} )); then sleep 1 & wait $! || true; fi
  done
  children=()
  if (( stopped )); then exit "$stopped"; fi
  if (( status )); then exit "$status"; fi
}
run_step() {
  start_step "$@"
  wait_steps
}
