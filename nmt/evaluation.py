"""Scores with sacreBLEU (Post, 2018): BLEU, chrF and TER, each with its signature.

Two BLEU conventions are reported:
  * "sacrebleu": cased, detokenized text, 13a tokenization (the modern standard);
  * "tokenized": the Multi30k literature convention: lowercase, normalize punctuation and
    Moses-tokenize hypothesis and reference (as the dataset's task1-tokenize.sh does), then
    BLEU on those tokens (`--tokenize none`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
from sacremoses import MosesPunctNormalizer, MosesTokenizer

from nmt.errors import NmtError


def moses_lowercase_tokenize(lines: Sequence[str], lang: str) -> list[str]:
    """Lowercased, punctuation-normalized, Moses-tokenized text (no XML escaping)."""
    normalizer = MosesPunctNormalizer(lang=lang)
    tokenizer = MosesTokenizer(lang=lang)
    return [
        tokenizer.tokenize(normalizer.normalize(line).lower(), escape=False, return_str=True)
        for line in lines
    ]


def score(hypotheses: Sequence[str], references: Sequence[str], lang: str = "en") -> dict:
    """BLEU, chrF and TER of `hypotheses` against one reference each.

    Args:
        hypotheses: detokenized system outputs, one per line.
        references: detokenized references, aligned with the hypotheses.
        lang: target language code, for the Moses tokenizer of the tokenized BLEU.

    Returns:
        {"bleu", "chrf", "ter", "bleu_tokenized"}: each {"score", "signature", "text"}.

    Raises:
        NmtError: the two lists differ in length.
    """
    if len(hypotheses) != len(references):
        raise NmtError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: they must align"
        )
    hypotheses, references = list(hypotheses), list(references)
    results = {}
    for name, metric in (
        ("bleu", sacrebleu.metrics.BLEU()),
        ("chrf", sacrebleu.metrics.CHRF()),
        ("ter", sacrebleu.metrics.TER()),
    ):
        value = metric.corpus_score(hypotheses, [references])
        results[name] = _entry(value, metric)
    tokenized = sacrebleu.metrics.BLEU(tokenize="none", force=True)
    value = tokenized.corpus_score(
        moses_lowercase_tokenize(hypotheses, lang), [moses_lowercase_tokenize(references, lang)]
    )
    results["bleu_tokenized"] = _entry(value, tokenized)
    results["bleu_tokenized"]["signature"] += f"|lc+moses-tok:{lang}"
    return results


def _entry(value, metric) -> dict:
    return {
        "score": round(value.score, 2),
        "signature": str(metric.get_signature()),
        "text": str(value),
    }


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Cased 13a sacreBLEU, the number validation tracks."""
    return sacrebleu.metrics.BLEU().corpus_score(list(hypotheses), [list(references)]).score


def paired_bootstrap(
    system: Sequence[str],
    baseline: Sequence[str],
    references: Sequence[str],
    samples: int = 1000,
) -> dict:
    """Is `system`'s BLEU better than `baseline`'s by more than chance? (Koehn, 2004)

    sacreBLEU's paired bootstrap resampling: both systems are scored on the same `samples`
    resampled test sets; the p-value is the share of samples where the difference does not
    favour the better system (sacreBLEU's convention; seed 12345 unless SACREBLEU_SEED says
    otherwise).

    Returns:
        {"system": {...}, "baseline": {...}, "p_value", "signature"}, each system with
        "score", "mean" and "ci" (half-width of the 95% confidence interval).
    """
    from sacrebleu.significance import PairedTest

    test = PairedTest(
        [("baseline", list(baseline)), ("system", list(system))],
        {"BLEU": sacrebleu.metrics.BLEU()},
        [list(references)],
        test_type="bs",
        n_samples=samples,
    )
    signatures, results = test()
    base, ours = results["BLEU"]
    summary = {
        name: {"score": r.score, "mean": float(r.mean), "ci": float(r.ci)}
        for name, r in (("system", ours), ("baseline", base))
    }
    return {**summary, "p_value": ours.p_value, "signature": str(signatures["BLEU"])}
