"""Steady-state decoding speed of the OpenNMT-py peer, measured the way `tools/benchmark.py
decode` measures ours: one process, the model loaded once, the file translated `--passes`
times; the first pass includes the peer's warm-up, the later ones are its steady state.

Runs in the peer's own environment (`../shared/peers/setup.sh`), with the arguments of
`onmt_translate` after a `--`:

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 \
      $PEERS/onmt-py/bin/python tools/peer_steady_state.py --passes 3 --json peer.json -- \
      -model MODEL.pt -src $PEERS/data/spm/test.en -output /tmp/peer.pieces \
      -beam_size 5 -batch_size 32 -batch_type sents -max_length 100 -gpu -1

Prints one line per pass (seconds, sentences/s, output pieces/s without EOS).
"""

import argparse
import json
import statistics
import sys
import time


def main() -> None:
    own = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    own.add_argument("--passes", type=int, default=3, help="translations of the file (default 3)")
    own.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    own.add_argument("--json", help="also write the timings to this JSON file")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = own.parse_args(argv[:split])

    import torch

    torch.set_num_threads(args.threads)
    from onmt.bin.translate import _get_parser
    from onmt.inference_engine import InferenceEnginePY
    from onmt.utils.misc import set_random_seed, use_gpu
    from onmt.utils.parse import ArgumentParser

    opt = _get_parser().parse_args(argv[split + 1 :])
    ArgumentParser.validate_translate_opts(opt)
    ArgumentParser._get_all_transform_translate(opt)
    ArgumentParser._validate_transforms_opts(opt)
    ArgumentParser.validate_translate_opts_dynamic(opt)
    set_random_seed(opt.seed, use_gpu(opt))
    engine = InferenceEnginePY(opt)
    passes = []
    for index in range(args.passes):
        start = time.perf_counter()
        _, predictions = engine.infer_file()
        seconds = time.perf_counter() - start
        sentences = len(predictions)
        pieces = sum(len(p[0].split()) for p in predictions)
        passes.append({"seconds": seconds, "sentences": sentences, "pieces": pieces})
        print(
            f"pass {index + 1}: {seconds:.2f} s, {sentences / seconds:.1f} sentences/s, "
            f"{pieces / seconds:.0f} pieces/s",
            flush=True,
        )
    engine.terminate()
    later = [p["sentences"] / p["seconds"] for p in passes[1:]]
    if later:
        median = statistics.median(later)
        print(f"steady state (median of passes 2-{args.passes}): {median:.1f} sentences/s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"passes": passes}, out, indent=1)


if __name__ == "__main__":
    main()
