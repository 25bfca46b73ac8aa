"""Translate with an exported LiteRT model: numpy, sentencepiece and ai-edge-litert only.

    python -m nmt.export.litert_runner MODEL_DIR < input.txt > output.txt
    python MODEL_DIR/litert_runner.py MODEL_DIR < input.txt > output.txt   # without nmt

`nmt export --format litert` copies this file into MODEL_DIR, so a device needs neither
TensorFlow nor `nmt`: this module must import nothing else (tests check it with
`python -X importtime`). It does what `Translator.translate` does with greedy search: one
output line per input line, empty in, empty out, inputs longer than `max_source_length`
pieces truncated with a warning; the search is `nmt.decoding.search.greedy_search`'s,
one sentence at a time: the most probable token at every step, EOS forced at the length limit
max(int(pieces * max_length_ratio) + max_length_offset, 1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import sentencepiece as spm
from ai_edge_litert.interpreter import Interpreter

MODEL_FILE = "model.tflite"
SETTINGS_FILE = "litert.json"


class RunnerSettings(NamedTuple):
    """What the runner needs beside the model, written by the exporter as litert.json."""

    source_model: str  # SentencePiece file names in the model folder (equal when joint)
    target_model: str
    max_source_length: int
    max_length_ratio: float
    max_length_offset: int
    bos_id: int
    eos_id: int
    quantize: str  # "none" or "int8", for the record


class Translation(NamedTuple):
    text: str
    score: float  # sum of the chosen tokens' log-probabilities, EOS included


class LiteRTTranslator:
    """Greedy translation with an exported model folder.

    Args:
        model_dir: the folder `nmt export --format litert` wrote.
        num_threads: interpreter threads (None: LiteRT's default).
    """

    def __init__(self, model_dir: str | Path, num_threads: int | None = None):
        model_dir = Path(model_dir)
        settings = json.loads((model_dir / SETTINGS_FILE).read_text())
        self.settings = RunnerSettings(**settings)
        self._source = spm.SentencePieceProcessor(
            model_file=str(model_dir / self.settings.source_model)
        )
        self._target = spm.SentencePieceProcessor(
            model_file=str(model_dir / self.settings.target_model)
        )
        interpreter = Interpreter(model_path=str(model_dir / MODEL_FILE), num_threads=num_threads)
        self._encode = interpreter.get_signature_runner("encode")
        self._step = interpreter.get_signature_runner("step")
        self.truncated = 0

    def translate_one(self, text: str) -> Translation:
        """The greedy translation of one line (an empty line gives an empty one)."""
        ids = self._source.encode(text)
        if not ids:
            return Translation("", 0.0)
        limit = self.settings.max_source_length
        if len(ids) > limit:
            self.truncated += 1
            print(
                f'nmt: warning: an input of {len(ids)} pieces ("{text[:40]}...") '
                f"is truncated to its first {limit} pieces",
                file=sys.stderr,
            )
            ids = ids[:limit]
        tokens, score = self._greedy(np.array([ids], np.int32))
        text = self._target.decode(tokens)
        return Translation(text.replace("\r", " ").replace("\n", " "), score)

    def _greedy(self, source: np.ndarray) -> tuple[list[int], float]:
        """source [1, T_s] -> the output ids without EOS and their summed log-probability."""
        encoded = self._encode(source=source)
        state = {name: x for name, x in encoded.items() if name.startswith("state_")}
        memory = {name: x for name, x in encoded.items() if name.startswith("memory_")}
        ratio, offset = self.settings.max_length_ratio, self.settings.max_length_offset
        # float32 as in the graph, so int() truncates the same product.
        max_length = max(int(np.float32(source.shape[1]) * np.float32(ratio)) + offset, 1)
        eos, token, output, score = self.settings.eos_id, self.settings.bos_id, [], 0.0
        for t in range(max_length):
            out = self._step(tokens=np.array([token], np.int32), **state, **memory)
            log_probs = out["log_probs"][0]
            token = eos if t >= max_length - 1 else int(np.argmax(log_probs))
            score += float(log_probs[token])
            if token == eos:
                break
            output.append(token)
            state = {name: x for name, x in out.items() if name.startswith("state_")}
        return output, score

    def translate(self, lines: Iterable[str]) -> Iterator[Translation]:
        """One translation per line, in order."""
        return (self.translate_one(line) for line in lines)


def _lines(stream: Iterable[str]) -> Iterator[str]:
    """Lines as `nmt translate` reads them: no newline, no CRLF's "\\r", no byte-order mark."""
    for number, line in enumerate(stream):
        line = line.rstrip("\n")
        line = line[:-1] if line.endswith("\r") else line
        yield line.removeprefix("\ufeff") if number == 0 else line


def main(argv: list[str] | None = None) -> int:
    """`litert_runner MODEL_DIR < input > output`: one translated line per input line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m nmt.export.litert_runner MODEL_DIR < input > output")
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    translator = LiteRTTranslator(args[0])
    stdin = open(sys.stdin.fileno(), encoding="utf-8", newline="\n", closefd=False)
    for translation in translator.translate(_lines(stdin)):
        sys.stdout.write(translation.text + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
