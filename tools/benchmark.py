#!/usr/bin/env python3
"""Speed benchmarks of nmt on this machine, printed and written as JSON.

    python tools/benchmark.py train  --config recipes/multi30k/en-de.yaml --steps 500
    python tools/benchmark.py decode --run-dir runs/multi30k-en-de \
        --source recipes/multi30k/data/test_2016_flickr.en.gz --beam-size 5
    python tools/benchmark.py matmul

train: target tokens/s of the real training step (the same `make_train_step` as `nmt train`)
after a warm-up, median over 50-step windows, no validation or checkpoints, plus peak RSS.
Token counts follow shared/peers: target pieces + one EOS per sentence.
decode: sentences/s and target pieces/s (EOS excluded) for a whole file after model load; the
first pass includes tf.function tracing, later passes are steady state; medians reported.
matmul: float32 GFLOP/s of a 2048x2048 matmul, the hardware yardstick.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench_train(args: argparse.Namespace) -> dict:
    import keras

    from nmt.config import load_config
    from nmt.model.seq2seq import build_model
    from nmt.training.trainer import (
        batches,
        make_optimizer,
        make_train_step,
        prepare_tokenizer,
    )

    config = load_config(args.config, args.set)
    keras.utils.set_random_seed(config.training.seed)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="nmt-bench-"))
    tokenizer = prepare_tokenizer(config, work, print)
    model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
    optimizer = make_optimizer(config)
    t = config.training
    step = make_train_step(model, optimizer, t.label_smoothing, t.clip_norm, t.jit_compile)
    d = config.data
    windows, tokens, sources, sentences, started = [], 0.0, 0.0, 0, None
    done = 0
    while done < args.steps:
        dataset = batches(
            config, tokenizer, d.train_source, d.train_target, seed=config.training.seed + done
        )
        for batch in dataset:
            loss, batch_tokens, _ = step(batch)
            float(loss)  # wait for the step to finish
            done += 1
            if done == args.warmup:
                started, tokens = time.perf_counter(), 0.0
            elif done > args.warmup:
                tokens += float(batch_tokens)
                sources += float((batch["source"] != 0).numpy().sum())
                sentences += int(batch["source"].shape[0])
                if (done - args.warmup) % 50 == 0:
                    now = time.perf_counter()
                    windows.append(tokens / (now - started))
                    started, tokens = now, 0.0
            if done >= args.steps:
                break
    return {
        "benchmark": "train",
        "config": str(args.config),
        "overrides": args.set,
        "parameters": model.count_params(),
        "steps": done,
        "warmup_steps": args.warmup,
        "target_tokens_per_second_median": statistics.median(windows),
        "target_tokens_per_second_windows": [round(w) for w in windows],
        "mean_sentences_per_batch": sentences / max(done - args.warmup, 1),
        "peak_rss_gib": peak_rss_gib(),
    }


def bench_decode(args: argparse.Namespace) -> dict:
    from nmt.data.text import read_lines
    from nmt.decoding.translator import Translator

    started = time.perf_counter()
    translator = Translator.load(args.run_dir)
    load_seconds = time.perf_counter() - started
    sources = list(read_lines(args.source))
    passes = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        outputs = translator.translate(
            sources, beam_size=args.beam_size, batch_size=args.batch_size
        )
        passes.append(time.perf_counter() - started)
    pieces = sum(len(ids) for ids in translator.tokenizer.encode_target(outputs))
    steady = statistics.median(passes[1:]) if len(passes) > 1 else passes[0]
    return {
        "benchmark": "decode",
        "run_dir": str(args.run_dir),
        "beam_size": args.beam_size,
        "batch_size": args.batch_size,
        "sentences": len(sources),
        "target_pieces": pieces,
        "model_load_seconds": load_seconds,
        "pass_seconds": passes,
        "first_pass_sentences_per_second": len(sources) / passes[0],
        "steady_sentences_per_second": len(sources) / steady,
        "steady_target_pieces_per_second": pieces / steady,
        "peak_rss_gib": peak_rss_gib(),
    }


def bench_matmul(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    results = {}
    for m, k, n in ((2048, 2048, 2048), (64, 768, 1024)):
        a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
        matmul = tf.function(lambda a, b: tf.matmul(a, b))
        matmul(a, b).numpy()
        repeats = max(3, int(2e10 / (2 * m * k * n)))
        started = time.perf_counter()
        for _ in range(repeats):
            out = matmul(a, b)
        out.numpy()
        seconds = time.perf_counter() - started
        results[f"{m}x{k}x{n}_gflops"] = 2 * m * k * n * repeats / seconds / 1e9
    return {"benchmark": "matmul", **results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("train", help="training throughput")
    p.add_argument("--config", default="recipes/multi30k/en-de.yaml")
    p.add_argument("--set", action="append", default=[], help="config override, as nmt train")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--work-dir", help="where the tokenizer goes (default: a new temp folder)")
    p = sub.add_parser("decode", help="decoding speed")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    sub.add_parser("matmul", help="float32 matmul peak")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    result = {"train": bench_train, "decode": bench_decode, "matmul": bench_matmul}[args.what](args)
    import tensorflow as tf

    result.update(
        tensorflow=tf.__version__,
        cpus=os.cpu_count(),
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
