#!/usr/bin/env python3
"""Speed benchmarks of nmt on this machine, printed and written as JSON.

    python tools/benchmark.py train  --config recipes/multi30k/en-de.yaml --steps 500
    python tools/benchmark.py decode --run-dir runs/multi30k-en-de \
        --source recipes/multi30k/data/test_2016_flickr.en.gz --beam-size 5
    python tools/benchmark.py matmul
    python tools/benchmark.py scale --multi30k ../shared/data/multi30k --work-dir /tmp/scale

train: target tokens/s of the real training step (the same `make_train_step` as `nmt train`)
after a warm-up, median over 50-step windows, no validation or checkpoints, plus peak RSS and
the model's matmul GFLOP/s on real tokens (`training_flops`).
Token counts follow shared/peers: target pieces + one EOS per sentence.
decode: sentences/s and target pieces/s (EOS excluded) for a whole file after model load; the
first pass includes tf.function tracing, later passes are steady state; medians reported.
matmul: float32 and bfloat16 GFLOP/s of a 2048x2048 matmul (the hardware yardstick) and of
two matmul shapes of the model size (an LSTM step at batch 64, the output projection).

scale: the data path on synthetic WMT-length corpora of 0.5, 1 and 2 million pairs made from
Multi30k: prepare pairs/s, epoch pairs/s, resume latency, per-worker input CPU, data order,
`nmt train` start to first step, peak RSS, today's streaming pipeline beside it
(tools/scale_benchmark.py says how each is measured).

--size names a reference model (MODEL_SIZES; default ref-small): `train` applies it to the
config as `--set` overrides before the user's own, `matmul` takes its shapes from it.
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


# Named model sizes, as `--set` overrides of recipes/multi30k/en-de.yaml (ref-small's own
# sizes). Both keep the joint 8k SentencePiece vocabulary; peer configs: tools/*.onmt.yaml and
# ../shared/peers/ref-small.onmt.yaml.
MODEL_SIZES = {
    "ref-small": {
        "model.embedding_size": 256,
        "model.hidden_size": 256,
        "model.encoder_layers": 2,
        "model.decoder_layers": 2,
    },
    "ref-large": {
        "model.embedding_size": 512,
        "model.hidden_size": 512,
        "model.encoder_layers": 4,
        "model.decoder_layers": 4,
    },
}


def size_overrides(size: str) -> list[str]:
    """`--set` strings for a named model size."""
    return [f"{key}={value}" for key, value in MODEL_SIZES[size].items()]


def matmul_shapes(size: str) -> list[tuple[int, int, int]]:
    """(M, K, N) of a decoder LSTM step at batch 64 ([E + H + H] x 4H, input feeding) and of
    the output projection over 1024 target tokens ([H] x 8000)."""
    e, h = (MODEL_SIZES[size][f"model.{name}_size"] for name in ("embedding", "hidden"))
    return [(64, e + 2 * h, 4 * h), (1024, h, 8000)]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def training_flops(model_config, vocab_size: int, batch) -> float:
    """Matmul FLOPs of one training step on a batch's real (unpadded) tokens.

    Forward: encoder per source token, decoder per target token, attention per (source,
    target) token pair; backward costs twice the forward, so a step is 3x the forward.
    Elementwise work (gates, softmax) is left out, as usual for FLOP counts.
    """
    import numpy as np

    m = model_config
    e, h, half = m.embedding_size, m.hidden_size, m.hidden_size // 2
    encoder = 2 * 2 * (e + half) * 4 * half + (m.encoder_layers - 1) * 2 * 2 * h * 4 * h
    encoder += 2 * h * h if m.attention != "dot" else 0  # keys, projected once
    feed = h if m.input_feeding else 0
    decoder = 2 * (e + feed + h) * 4 * h + (m.decoder_layers - 1) * 2 * 2 * h * 4 * h
    decoder += 2 * 2 * h * h + 2 * h * vocab_size  # combine [c; h], output projection
    source_lengths = (batch["source"].numpy() != 0).sum(1)
    target_lengths = (batch["target_out"].numpy() != 0).sum(1)
    pairs = float(np.dot(source_lengths, target_lengths))
    forward = encoder * source_lengths.sum() + decoder * target_lengths.sum() + 2 * 2 * h * pairs
    return 3.0 * forward


def bench_train(args: argparse.Namespace) -> dict:
    import keras

    from nmt.config import load_config
    from nmt.data.tokenizer import prepare_tokenizer
    from nmt.model.seq2seq import build_model
    from nmt.training.epochs import batches
    from nmt.training.steps import make_optimizer, make_train_step

    config = load_config(args.config, size_overrides(args.size) + args.set)
    keras.utils.set_random_seed(config.training.seed)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="nmt-bench-"))
    tokenizer = prepare_tokenizer(config, work / "tokenizer", print)
    model = build_model(config.model, tokenizer.source_vocab_size, tokenizer.target_vocab_size)
    optimizer = make_optimizer(config.training)
    t = config.training
    step = make_train_step(model, optimizer, t.label_smoothing, t.clip_norm, t.jit_compile)
    d = config.data
    windows, tokens, sources, sentences, started = [], 0.0, 0.0, 0, None
    flops, window_flops = 0.0, []
    done = 0
    while done < args.steps:
        dataset = batches(
            config.data, tokenizer, d.train_source, d.train_target, seed=config.training.seed + done
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
                flops += training_flops(config.model, tokenizer.target_vocab_size, batch)
                if (done - args.warmup) % 50 == 0:
                    now = time.perf_counter()
                    windows.append(tokens / (now - started))
                    window_flops.append(flops / (now - started) / 1e9)
                    started, tokens, flops = now, 0.0, 0.0
            if done >= args.steps:
                break
    return {
        "benchmark": "train",
        "config": str(args.config),
        "size": args.size,
        "overrides": args.set,
        "parameters": model.count_params(),
        "steps": done,
        "warmup_steps": args.warmup,
        "target_tokens_per_second_median": statistics.median(windows),
        "target_tokens_per_second_windows": [round(w) for w in windows],
        "model_gflops_per_second_median": statistics.median(window_flops),
        "model_mflops_per_target_token": 1e3 * sum(window_flops) / sum(windows),
        "mean_sentences_per_batch": sentences / max(done - args.warmup, 1),
        "peak_rss_gib": peak_rss_gib(),
    }


def bench_decode(args: argparse.Namespace) -> dict:
    from nmt.data.text import read_lines
    from nmt.decoding.translator import Translator
    from nmt.run_directory import read_config
    from nmt.threads import search_thread_pools, set_thread_pools

    # The thread pools `nmt translate` sizes for its searches side by side.
    searches = args.concurrent_batches or read_config(args.run_dir).decoding.concurrent_batches
    set_thread_pools(search_thread_pools(searches))
    started = time.perf_counter()
    translator = Translator.load(args.run_dir, args.checkpoint, args.compute_dtype, args.shortlist)
    load_seconds = time.perf_counter() - started
    sources = list(read_lines(args.source))
    settings = {"beam_size": args.beam_size, "batch_size": args.batch_size}
    if args.stopping:
        settings["stopping"] = args.stopping
    if args.live_beam:
        settings["live_beam"] = args.live_beam
    if args.concurrent_batches:
        settings["concurrent_batches"] = args.concurrent_batches
    passes = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        outputs = translator.translate(sources, **settings)
        passes.append(time.perf_counter() - started)
    pieces = sum(len(ids) for ids in translator.tokenizer.encode_target(outputs))
    steady = statistics.median(passes[1:]) if len(passes) > 1 else passes[0]
    quality = {}
    if args.ref:
        from nmt.evaluation import corpus_bleu

        quality["bleu"] = corpus_bleu(outputs, list(read_lines(args.ref)))
    return {
        "benchmark": "decode",
        "run_dir": str(args.run_dir),
        "checkpoint": args.checkpoint,
        "beam_size": args.beam_size,
        "batch_size": args.batch_size,
        "concurrent_batches": args.concurrent_batches or translator.decoding.concurrent_batches,
        "stopping": args.stopping or translator.decoding.stopping,
        "live_beam": args.live_beam or translator.decoding.live_beam,
        "compute_dtype": translator.model.compute_dtype,
        "shortlist": args.shortlist,
        **quality,
        "sentences": len(sources),
        "target_pieces": pieces,
        "model_load_seconds": load_seconds,
        "pass_seconds": passes,
        "first_pass_sentences_per_second": len(sources) / passes[0],
        "steady_sentences_per_second": len(sources) / steady,
        "steady_target_pieces_per_second": pieces / steady,
        "peak_rss_gib": peak_rss_gib(),
    }


def _gflops(matmul, a, b) -> float:
    m, k, n = a.shape[0], b.shape[0], b.shape[-1]
    matmul(a, b).numpy()
    repeats = max(3, int(2e10 / (2 * m * k * n)))
    started = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a, b)
    out.numpy()
    return 2 * m * k * n * repeats / (time.perf_counter() - started) / 1e9


def bench_matmul(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    results = {}
    shapes = [(2048, 2048, 2048), *matmul_shapes(args.size)]
    for dtype in (tf.float32, tf.bfloat16):
        for m, k, n in shapes:
            a = tf.cast(tf.random.normal([m, k]), dtype)
            b = tf.cast(tf.random.normal([k, n]), dtype)
            gflops = _gflops(tf.function(lambda a, b: tf.matmul(a, b)), a, b)
            results[f"{dtype.name}_{m}x{k}x{n}_gflops"] = gflops
    return {"benchmark": "matmul", "size": args.size, **results}


def bench_scale(args: argparse.Namespace) -> dict:
    import scale_benchmark  # tools/, beside this script

    return {"benchmark": "scale", **scale_benchmark.run(args)}


def _add_size_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size",
        choices=sorted(MODEL_SIZES),
        default="ref-small",
        help="named model size (ref-large: 512 embeddings and hidden, 4+4 layers; "
        "default: %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("train", help="training throughput")
    p.add_argument(
        "--config",
        default="recipes/multi30k/en-de.yaml",
        help="experiment YAML (default: %(default)s)",
    )
    p.add_argument("--set", action="append", default=[], help="config override, as nmt train")
    _add_size_flag(p)
    p.add_argument(
        "--steps",
        type=int,
        default=500,
        help="steps in all, the warm-up included (default: %(default)s)",
    )
    p.add_argument(
        "--warmup", type=int, default=100, help="untimed steps first (default: %(default)s)"
    )
    p.add_argument("--work-dir", help="where the tokenizer goes (default: a new temp folder)")
    p = sub.add_parser("decode", help="decoding speed")
    p.add_argument("--run-dir", required=True, help="a trained run directory")
    p.add_argument("--source", required=True, help="text file to translate (.gz allowed)")
    p.add_argument("--beam-size", type=int, default=5, help="1: greedy (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default: 32)")
    p.add_argument(
        "--concurrent-batches",
        type=int,
        help="batches searched side by side (default: the run's decoding config)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="passes over the file in one process; the first includes tracing (default: 3)",
    )
    p.add_argument("--checkpoint", help="checkpoint prefix (default: the run's best)")
    p.add_argument("--stopping", choices=("exact", "heuristic"), help="default: the run's config")
    p.add_argument(
        "--live-beam",
        choices=("narrowing", "full"),
        help="ended hypotheses keep their beam slot ('narrowing') or leave it while K stay"
        " live ('full'); default: the run's config",
    )
    p.add_argument(
        "--compute-dtype",
        choices=("float32", "bfloat16", "auto"),
        help="precision of the search (auto: bfloat16 where the hardware has it); default: the"
        " run's model.compute_dtype",
    )
    p.add_argument("--shortlist", help="lexical shortlist file (nmt shortlist)")
    p.add_argument("--ref", help="reference file: also report cased sacreBLEU of the output")
    p = sub.add_parser("matmul", help="float32, bfloat16 and int8 matmul peaks")
    _add_size_flag(p)
    p = sub.add_parser("scale", help="the data path on synthetic corpora of millions of pairs")
    p.add_argument("--multi30k", required=True, help="folder of Multi30k's train.{en,de}.gz")
    p.add_argument(
        "--work-dir", required=True, help="where corpora, tokenizer and runs go (GBs at 2M)"
    )
    p.add_argument(
        "--config",
        default="recipes/multi30k/en-de.yaml",
        help="batching and model settings (default: %(default)s)",
    )
    p.add_argument("--set", action="append", default=[], help="config override, as nmt train")
    p.add_argument(
        "--pairs",
        type=int,
        nargs="+",
        default=[500_000, 1_000_000, 2_000_000],
        help="corpus sizes (default: %(default)s)",
    )
    p.add_argument(
        "--baseline-at",
        type=int,
        nargs="*",
        default=[2_000_000],
        help="sizes at which the streaming pipeline is timed too (default: %(default)s)",
    )
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    benches = {"train": bench_train, "decode": bench_decode, "matmul": bench_matmul}
    benches["scale"] = bench_scale
    result = benches[args.what](args)
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
