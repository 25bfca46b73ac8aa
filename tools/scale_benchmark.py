"""The data path on a WMT-size corpus: `python tools/benchmark.py scale` (see there).

A synthetic corpus of WMT sentence length is made from Multi30k: pairs i and j joined into one
(about 25 words a side), the source starting with its 0-based line number, so every line is
different. Its lines stand for three concatenated corpora of 45%, 50% and 5% ("blocks"). Each
stage is timed on its own, for each size:

- prepare: `nmt prepare` in a fresh process (pairs/s from its log; peak RSS of the process);
- epoch: every batch of epoch 1 read from the prepared shards through tf.data (pairs/s);
- resume: from plan batch 0, 10%, 50% and 90% of the epoch to the first batch in hand;
- workers: input CPU seconds (process time) to read worker 0's share of an epoch at W = 1, 2;
- order: Spearman's rank correlation of batch number with line number over the first 2,000
  batches, and each block's largest distance from its share over every 500 batches;
- train: seconds from `nmt train` starting (a new process) to its first logged step, and its
  peak RSS, with the prepared data in place; then the peak RSS of 100 steps of a tiny model
  (embeddings and hidden 32), where the data path's memory is not hidden by how long the first
  batch happens to be (one batch of 100-piece pairs costs the recipe model ~300 MB of
  activations);
- baseline: today's code before prepared data, the streaming text pipeline
  (nmt/data/pipeline.py `training_dataset`): one epoch's pairs/s, and the first batch of a
  resume at 50% through `Dataset.skip`, as the trainer did.
"""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BLOCKS = (0.45, 0.50, 0.05)


def write_corpus(multi30k: Path, pairs: int, out: Path) -> tuple[Path, Path]:
    """The synthetic corpus of `pairs` lines (made once, kept in `out`)."""
    source, target = out / f"scale-{pairs}.en", out / f"scale-{pairs}.de"
    if source.is_file() and target.is_file():
        return source, target
    sides = []
    for lang in ("en", "de"):
        with gzip.open(multi30k / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            sides.append([line.rstrip("\n") for line in f])
    n = len(sides[0])
    out.mkdir(parents=True, exist_ok=True)
    with open(source, "w", encoding="utf-8") as s, open(target, "w", encoding="utf-8") as t:
        for line in range(pairs):
            i, j = line % n, (line % n + 1 + line // n) % n
            s.write(f"{line} {sides[0][i]} {sides[0][j]}\n")
            t.write(f"{sides[1][i]} {sides[1][j]}\n")
    return source, target


def _ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2)[inverse]


def order_figures(plan, pairs: int, batches: int = 2000, window: int = 500) -> dict:
    """Spearman(batch, line) over the first batches, and the blocks' worst share distance."""
    batches = min(batches, plan.batches)
    end = plan.starts[batches]
    batch_of = np.repeat(np.arange(batches), np.diff(plan.starts[: batches + 1]))
    rho = float(np.corrcoef(_ranks(batch_of), _ranks(plan.line[:end]))[0, 1])
    bounds = np.cumsum([round(share * pairs) for share in BLOCKS])
    block = np.searchsorted(bounds, plan.line, side="right")
    worst = 0.0
    for start in range(0, batches - window + 1, window):
        a, b = plan.starts[start], plan.starts[start + window]
        seen = np.bincount(block[a:b], minlength=3) / (b - a)
        worst = max(worst, float(np.abs(seen - np.array(BLOCKS)).max()))
    return {"spearman": round(rho, 4), "worst_block_share_points": round(100 * worst, 2)}


def _child_peak_rss(command: list[str], env: dict | None = None) -> tuple[float, str, float]:
    """Runs a command in a fresh process: (seconds, stdout, its peak RSS in MiB)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(r.stdout)\nsys.stderr.write(r.stderr)\n"
        "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    lines = result.stdout.splitlines()
    rss = int(lines[-1].split()[1]) / 1024
    return seconds, "\n".join(lines[:-1]), rss


def _train_seconds(
    config: Path, run_dir: Path, overrides: list[str], steps: int = 1
) -> tuple[float, float]:
    """`nmt train` from process start to the end of step `steps` (from scratch), and its peak
    RSS."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    command = [sys.executable, "-m", "nmt", "train", "--config", str(config)]
    command += ["--run-dir", str(run_dir)]
    for item in overrides + [f"training.max_steps={steps}", "training.log_every=1"]:
        command += ["--set", item]
    seconds, _, rss = _child_peak_rss(command)
    return seconds, rss


def _epoch_seconds(data, strategy, epoch: int, position: int = 0, limit: int = 0):
    """Seconds to the first batch and to the end (or `limit` batches), and pairs read."""
    from nmt.training.epochs import epoch_batches

    started = time.perf_counter()
    current = epoch_batches(data, strategy, epoch, position)
    first = None
    pairs = 0
    for index, batch in enumerate(current.dataset):
        if first is None:
            first = time.perf_counter() - started
        pairs += int(batch["source"].shape[0])
        if limit and index + 1 >= limit:
            break
    return first, time.perf_counter() - started, pairs


def _worker_cpu_seconds(data, workers: int) -> float:
    """Process CPU seconds to read worker 0's share of epoch 1 (plan, gather, tf.data)."""
    from nmt.data.epoch_plan import replica_batches
    from nmt.training.epochs import replica_dataset

    started = time.process_time()
    plan = data.plan(0)
    mine = [step[0] for step in replica_batches(plan, 0, workers)]
    for _ in replica_dataset(data, mine, 0):
        pass
    return time.process_time() - started


def _baseline(config, tokenizer, source: Path, target: Path, pairs: int) -> dict:
    """Today's streaming pipeline: an epoch's pairs/s and a resume at 50% by `skip`."""
    from nmt.training.epochs import batches

    def dataset():
        d = config.data
        return batches(d, tokenizer, str(source), str(target), seed=config.training.seed)

    started = time.perf_counter()
    count = sum(int(b["source"].shape[0]) for b in dataset())
    epoch = time.perf_counter() - started
    steps = int(np.ceil(count / config.data.batch_size)) if config.data.batch_size else 0
    started = time.perf_counter()
    next(iter(dataset().skip(steps // 2)))
    resume = time.perf_counter() - started
    return {
        "epoch_seconds": round(epoch, 1),
        "epoch_pairs_per_second": round(count / epoch),
        "resume_50_seconds": round(resume, 1),
    }


def run(args) -> dict:
    """Every stage for every size; returns the figures (also printed as they come)."""
    import tensorflow as tf

    from nmt.config import load_config
    from nmt.data.tokenizer import train_tokenizer
    from nmt.data.training_data import load_training_data

    work = Path(args.work_dir)
    multi30k = Path(args.multi30k)
    tokenizer_dir = work / "tokenizer"
    if not (tokenizer_dir / "spm.model").is_file():
        train_tokenizer(
            [multi30k / "train.en.gz"], [multi30k / "train.de.gz"], tokenizer_dir, vocab_size=8000
        )
    strategy = tf.distribute.get_strategy()
    results = {"sizes": {}}
    for pairs in args.pairs:
        figures = {}
        source, target = write_corpus(multi30k, pairs, work / "corpora")
        run_dir = work / f"run-{pairs}"
        overrides = [
            f"data.train_source={source}",
            f"data.train_target={target}",
            f"tokenizer.model={tokenizer_dir / 'spm.model'}",
            "data.valid_source=",  # validation is not what is measured
            "data.valid_target=",
        ] + args.set
        for stale in ("prepared", "checkpoints"):  # prepare and train from scratch each time
            shutil.rmtree(run_dir / stale, ignore_errors=True)
        config_args = ["--config", str(args.config), "--run-dir", str(run_dir)]
        config_args += [x for item in overrides for x in ("--set", item)]
        seconds, out, rss = _child_peak_rss([sys.executable, "-m", "nmt", "prepare", *config_args])
        prepared = [line for line in out.splitlines() if "prepared" in line and "pairs/s" in line]
        rate = float(prepared[-1].split("(")[-1].split()[0].replace(",", "")) if prepared else 0.0
        figures["prepare"] = {"pairs_per_second": rate, "wall_seconds": round(seconds, 1)}
        figures["prepare"]["peak_rss_mib"] = round(rss)
        print(pairs, "prepare", figures["prepare"], flush=True)

        config = load_config(args.config, overrides)
        from nmt.data.tokenizer import Tokenizer

        tokenizer = Tokenizer.load(run_dir / "tokenizer")
        data = load_training_data(config, tokenizer, run_dir / "prepared", lambda line: None)
        plan_started = time.perf_counter()
        plan = data.plan(0)
        figures["plan_seconds"] = round(time.perf_counter() - plan_started, 2)
        figures["batches"] = plan.batches
        first, total, read = _epoch_seconds(data, strategy, 0)
        figures["epoch"] = {"seconds": round(total, 1), "pairs_per_second": round(read / total)}
        print(pairs, "epoch", figures["epoch"], flush=True)
        figures["resume_first_batch_seconds"] = {
            f"{fraction}%": round(
                _epoch_seconds(data, strategy, 0, plan.batches * fraction // 100, limit=1)[0], 2
            )
            for fraction in (0, 10, 50, 90)
        }
        print(pairs, "resume", figures["resume_first_batch_seconds"], flush=True)
        figures["worker_input_cpu_seconds"] = {
            f"W={w}": round(_worker_cpu_seconds(data, w), 1) for w in (1, 2)
        }
        print(pairs, "workers", figures["worker_input_cpu_seconds"], flush=True)
        figures["order"] = order_figures(plan, pairs)
        print(pairs, "order", figures["order"], flush=True)
        start, train_rss = _train_seconds(args.config, run_dir, overrides)
        figures["train"] = {"start_to_first_step_seconds": round(start, 1)}
        figures["train"]["peak_rss_mib"] = round(train_rss)
        tiny = ["model.embedding_size=32", "model.hidden_size=32", "model.compute_dtype=float32"]
        tiny.append(f"data.prepared_dir={run_dir / 'prepared'}")  # shared: prepared already
        _, tiny_rss = _train_seconds(args.config, work / f"tiny-{pairs}", overrides + tiny, 100)
        figures["train"]["tiny_model_100_steps_peak_rss_mib"] = round(tiny_rss)
        print(pairs, "train", figures["train"], flush=True)
        if pairs in args.baseline_at:
            figures["baseline"] = _baseline(config, tokenizer, source, target, pairs)
            print(pairs, "baseline", figures["baseline"], flush=True)
        results["sizes"][str(pairs)] = figures
    results["extrapolated"] = extrapolate(results["sizes"])
    results["peak_rss_this_process_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps(results["extrapolated"], indent=2))
    return results


def extrapolate(sizes: dict) -> dict:
    """Prepare and epoch minutes at 4.5 and 40 million pairs from the largest size measured
    (both stages run in time proportional to the pairs)."""
    largest = max(sizes, key=int)
    figures = sizes[largest]
    out = {}
    for pairs in (4_500_000, 40_000_000):
        out[f"{pairs:,}"] = {
            "prepare_minutes": round(pairs / figures["prepare"]["pairs_per_second"] / 60, 1),
            "epoch_read_minutes": round(pairs / figures["epoch"]["pairs_per_second"] / 60, 1),
        }
        if "baseline" in figures:
            rate = figures["baseline"]["epoch_pairs_per_second"]
            out[f"{pairs:,}"]["baseline_epoch_minutes"] = round(pairs / rate / 60, 1)
    return out
