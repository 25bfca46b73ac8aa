"""Tune the GNMT length (alpha) and coverage (beta) penalties on a validation set.

Wu et al. (2016, section 7) tune alpha and beta on the development set; the best values depend
on the model and the language pair, so `nmt sweep` decodes the validation set once per grid
point and reports BLEU for each.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from nmt.decoding.translator import Translator
from nmt.evaluation import corpus_bleu


class SweepPoint(NamedTuple):
    alpha: float
    beta: float
    bleu: float  # cased sacreBLEU
    seconds: float  # decoding time


def sweep_penalties(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    alphas: Sequence[float],
    betas: Sequence[float],
    beam_size: int,
    report: Callable[[SweepPoint], None] = lambda point: None,
) -> list[SweepPoint]:
    """BLEU of beam search at every (alpha, beta) of the grid, in grid order.

    Args:
        report: called after each point (progress for long sweeps).
    """
    points = []
    for alpha, beta in itertools.product(alphas, betas):
        started = time.monotonic()
        hypotheses = translator.translate(
            sources, beam_size=beam_size, length_penalty=alpha, coverage_penalty=beta
        )
        point = SweepPoint(alpha, beta, corpus_bleu(hypotheses, references), 0.0)
        point = point._replace(seconds=time.monotonic() - started)
        report(point)
        points.append(point)
    return points
