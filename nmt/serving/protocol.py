"""The JSON of `POST /translate`: requests validated field by field, responses shaped.

A request is `{"text": [LINE, ...]}` plus optional search settings named as in the `decoding`
section of the config. Anything else (bad JSON, unknown fields, wrong types, too many or too long
lines) is a `BadRequest` whose message names the field, so a client can fix it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from nmt.config import DecodingConfig
from nmt.errors import NmtError

# Search settings a request may choose, with their JSON types. batch_size belongs to the server.
SETTING_TYPES: dict[str, type] = {
    "beam_size": int,
    "n_best": int,
    "length_penalty": float,
    "coverage_penalty": float,
    "max_length_ratio": float,
    "max_length_offset": int,
    "stopping": str,
}
# Output length grows with these, and with it the time one request holds the model.
MAX_LENGTH_RATIO = 10.0
MAX_LENGTH_OFFSET = 100


class BadRequest(Exception):
    """A request the client must fix; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may ask for (flags of `nmt serve`)."""

    max_lines: int = 64
    max_line_chars: int = 2000
    max_body_bytes: int = 1 << 20
    max_beam_size: int = 16

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value < 1:
                raise NmtError(f"{field.name} must be a positive integer, got {value}")


class TranslateRequest(NamedTuple):
    lines: list[str]
    settings: DecodingConfig  # the run's defaults with the request's choices applied


def parse_request(body: bytes, defaults: DecodingConfig, limits: RequestLimits) -> TranslateRequest:
    """Validates a `POST /translate` body.

    Args:
        body: the raw request body.
        defaults: the run's decoding settings, which the request may override.
        limits: the server's bounds on lines and settings.

    Raises:
        BadRequest: with status 413 for too much text, 400 for anything else wrong.
    """
    if not body.strip():
        raise BadRequest('the request body is empty; send JSON like {"text": ["a sentence"]}')
    if len(body) > limits.max_body_bytes:
        raise BadRequest(f"the body has more than {limits.max_body_bytes} bytes", 413)
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest("the body nests JSON too deeply") from None
    if not isinstance(request, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(request).__name__}")
    unknown = sorted(set(request) - set(SETTING_TYPES) - {"text"})
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; fields are 'text' and {', '.join(SETTING_TYPES)}"
        )
    lines = _parse_text(request.get("text"), limits)
    settings = {name: _parse_setting(name, request[name]) for name in request if name != "text"}
    return TranslateRequest(lines, _resolve_settings(settings, defaults, limits))


def _parse_text(text: Any, limits: RequestLimits) -> list[str]:
    if text is None:
        raise BadRequest("'text' is missing: give a list of sentences")
    if not isinstance(text, list):
        raise BadRequest(f"'text' must be a list of strings, got {type(text).__name__}")
    if not text:
        raise BadRequest("'text' is an empty list; give at least one sentence")
    if len(text) > limits.max_lines:
        raise BadRequest(
            f"'text' has {len(text)} lines; the limit is {limits.max_lines} per request", 413
        )
    for i, line in enumerate(text):
        if not isinstance(line, str):
            raise BadRequest(f"text[{i}] must be a string, got {type(line).__name__}")
        if len(line) > limits.max_line_chars:
            raise BadRequest(
                f"text[{i}] has {len(line)} characters; the limit is {limits.max_line_chars}", 413
            )
    return text


def _parse_setting(name: str, value: Any) -> Any:
    kind = SETTING_TYPES[name]
    # JSON true is a Python int and 3.0 is a float: neither is a beam size.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequest(f"{name!r} must be an integer, got {json.dumps(value)}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"{name!r} must be a number, got {json.dumps(value)}")
        if not math.isfinite(value):
            raise BadRequest(f"{name!r} must be a finite number, got {value}")
        return float(value)
    if kind is str and not isinstance(value, str):
        raise BadRequest(f"{name!r} must be a string, got {json.dumps(value)}")
    return value


def _resolve_settings(
    settings: dict[str, Any], defaults: DecodingConfig, limits: RequestLimits
) -> DecodingConfig:
    bounds = {
        "beam_size": limits.max_beam_size,
        "max_length_ratio": MAX_LENGTH_RATIO,
        "max_length_offset": MAX_LENGTH_OFFSET,
    }
    for name, bound in bounds.items():
        if settings.get(name, 0) > bound:
            raise BadRequest(f"{name!r} must be at most {bound} here, got {settings[name]}")
    if settings.get("stopping", "exact") not in ("exact", "heuristic"):
        raise BadRequest(f"'stopping' must be 'exact' or 'heuristic', got {settings['stopping']!r}")
    try:
        return dataclasses.replace(defaults, **settings)
    except NmtError as error:  # DecodingConfig's own checks name the field as decoding.NAME
        raise BadRequest(str(error).replace("decoding.", "")) from None


def response_body(nbest: Sequence[Sequence[Any]], n_best: int) -> dict[str, Any]:
    """`{"translations", "scores"}` of the best hypotheses, and "nbest" lists when n_best > 1.

    Args:
        nbest: per line, its hypotheses (objects with `.text` and `.score`), best first.
        n_best: the request's n_best setting.
    """
    body: dict[str, Any] = {
        "translations": [hyps[0].text for hyps in nbest],
        "scores": [hyps[0].score for hyps in nbest],
    }
    if n_best > 1:
        body["nbest"] = [[{"text": h.text, "score": h.score} for h in hyps] for hyps in nbest]
    return body
