"""Optional external detectors for the C2 firewall: an HTTP judge and a user-supplied ONNX model.

Both are off by default and only run when ``guards.firewall.external`` configures them. Each
gives a probability in [0, 1] that the text is an injection, mapped onto the firewall's
calibrated scale by ``threshold_map`` (piecewise linear, identity by default), then combined
with the built-in score: ``max`` (default) keeps the higher, ``replace`` uses the external
score instead of the built-in one.

Contracts:
- HTTP judge: ``POST url`` with ``{"text": ..., "direction": "input"|"output"}`` (JSON); the
  answer must be HTTP 200 with ``{"score": <number in [0, 1]>}``.
- ONNX model: one float32 input of fixed shape ``[1, N]``, the hashed features of
  ``onnx_features`` (the ones ``_fw_model.featurize`` computes, folded modulo N); the first
  output (or ``output_name``) holds the probability: ``[1]``/``[1, 1]``, or ``[1, K]`` class
  probabilities read at ``output_index`` (default the last column).

A detector that fails (timeout, connection error, non-200, malformed answer, model error)
raises ``ExternalFailure`` with ``fail_mode: closed`` (the guard denies) or is skipped with
``fail_mode: ignore`` (the built-in score stands).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import itertools
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maestro_gateway.guards._fw_model import featurize
from maestro_gateway.scanning import Finding, ScanResult, ScanVerdict
from maestro_gateway.text.normalize import normalize
from maestro_gateway.upstream_http import HttpClient, UpstreamError

HTTP_RULE = "FW-EXT-HTTP"
ONNX_RULE = "FW-EXT-ONNX"
MAX_ANSWER = 64 * 1024
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
log = logging.getLogger("maestro_gateway.guards.firewall")

Direction = Literal["input", "output"]


class ExternalFailure(Exception):
    """An external detector failed and its ``fail_mode`` is ``closed``: the guard denies."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class _Adapter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["max", "replace"] = Field(
        "max", description="max: the higher of built-in and external score; replace: external."
    )
    fail_mode: Literal["closed", "ignore"] = Field(
        "closed", description="On error/timeout/garbage: deny (closed) or use built-in only."
    )
    threshold_map: list[tuple[float, float]] = Field(
        [(0.0, 0.0), (1.0, 1.0)],
        description="Piecewise-linear [detector probability, firewall score] points.",
    )

    @field_validator("threshold_map")
    @classmethod
    def _monotone(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if len(points) < 2 or not all(0 <= v <= 1 for v in xs + ys):
            raise ValueError("threshold_map needs >= 2 points within [0, 1]")
        if any(b <= a for a, b in itertools.pairwise(xs)) or any(
            b < a for a, b in itertools.pairwise(ys)
        ):
            raise ValueError("threshold_map must increase")
        return points

    def mapped(self, p: float) -> float:
        xs, ys = zip(*self.threshold_map, strict=True)
        return float(np.interp(p, xs, ys))


class HttpJudgeConfig(_Adapter):
    """An HTTP judge: POST ``{"text", "direction"}``, answer ``{"score": 0..1}``."""

    url: str
    timeout_ms: int = Field(200, ge=1, le=60_000, description="Whole exchange, connect included.")
    headers: dict[str, str] = {}
    max_chars: int = Field(16_384, ge=256, description="Text sent to the judge is cut here.")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http(s) URL")
        return url

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            bad = ":" in name or "\r" in name + value or "\n" in name + value
            if bad or name.lower() in _OWN_HEADERS:
                raise ValueError(f"header {name!r} is not allowed here")
        return headers


class OnnxConfig(_Adapter):
    """A text classifier in an ONNX file over ``onnx_features`` (see the module docstring)."""

    path: str
    input_name: str | None = Field(None, description="Default: the model's only input.")
    output_name: str | None = Field(None, description="Default: the model's first output.")
    output_index: int = Field(-1, description="Column of the class probabilities to read.")

    @model_validator(mode="after")
    def _usable(self) -> OnnxConfig:
        if importlib.util.find_spec("onnxruntime") is None:
            raise ValueError(
                "firewall.external.onnx needs onnxruntime: pip install 'maestro-gateway[onnx]'"
            )
        if not Path(self.path).is_file():
            raise ValueError(f"ONNX model file not found: {self.path}")
        return self


class ExternalConfig(BaseModel):
    """External detectors of the firewall; none by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http: HttpJudgeConfig | None = None
    onnx: OnnxConfig | None = None


def onnx_features(text: str, n: int, direction: Direction = "input") -> npt.NDArray[np.float32]:
    """The ONNX contract's input, shape ``[1, n]``: ``_fw_model.featurize`` of the normalised
    text (with its evasion signals, domain ``direct`` for input, ``indirect`` for output),
    each hashed index folded modulo ``n`` and values summed. Train your model on these."""
    norm = normalize(text)
    domain = "direct" if direction == "input" else "indirect"
    idx, val = featurize(norm.text, norm.signal_kinds(), domain)
    dense = np.bincount(idx % n, weights=val.astype(np.float64), minlength=n)
    return dense.astype(np.float32).reshape(1, n)


def _probability(value: object, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{rule}: score is not a number")
    p = float(value)
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{rule}: score {p!r} is outside [0, 1]")
    return p


class OnnxDetector:
    """A loaded ONNX model (one ``InferenceSession`` per file, single-threaded)."""

    def __init__(self, cfg: OnnxConfig) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]  # optional extra, lazy

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(cfg.path, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ValueError(f"cannot load ONNX model {cfg.path}: {exc}") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        name = cfg.input_name or next(iter(inputs))
        if name not in inputs:
            raise ValueError(f"ONNX model has no input {name!r} (has {sorted(inputs)})")
        shape = inputs[name].shape
        if inputs[name].type != "tensor(float)" or len(shape) != 2 or not isinstance(shape[1], int):
            raise ValueError(f"ONNX input {name!r} must be float [1, N] with a fixed N")
        self.input_name, self.n = name, int(shape[1])
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = cfg.output_name or outputs[0]
        if self.output_name not in outputs:
            raise ValueError(f"ONNX model has no output {self.output_name!r}")
        self.output_index = cfg.output_index

    def score(self, text: str, direction: Direction) -> float:
        features = onnx_features(text, self.n, direction)
        (out,) = self.session.run([self.output_name], {self.input_name: features})
        flat = np.asarray(out, dtype=np.float64).reshape(-1)
        if flat.size == 0:
            raise ValueError(f"{ONNX_RULE}: empty model output")
        return _probability(
            float(flat[0] if flat.size == 1 else flat[self.output_index]), ONNX_RULE
        )


@functools.lru_cache(maxsize=8)
def _onnx(key: str) -> OnnxDetector:
    return OnnxDetector(OnnxConfig.model_validate_json(key))


class HttpJudge:
    """Calls the judge over the gateway's pooled HTTP client (one per event loop)."""

    def __init__(self, cfg: HttpJudgeConfig) -> None:
        self.cfg = cfg
        self.timeout = cfg.timeout_ms / 1000
        self.headers = {"Content-Type": "application/json", **cfg.headers}
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, HttpClient]] = {}

    def _client(self) -> HttpClient:
        loop = asyncio.get_running_loop()
        hit = self._clients.get(id(loop))
        if hit is None or hit[0] is not loop:
            self._clients = {k: v for k, v in self._clients.items() if not v[0].is_closed()}
            client = HttpClient(
                connect_timeout=self.timeout, read_timeout=self.timeout, limit_per_host=32
            )
            hit = self._clients[id(loop)] = (loop, client)
        return hit[1]

    async def score(self, text: str, direction: Direction) -> float:
        body = json.dumps({"text": text[: self.cfg.max_chars], "direction": direction}).encode()
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self._client().request(
                    "POST", self.cfg.url, self.headers, body, self.timeout
                )
                try:
                    if resp.status != 200:
                        raise ValueError(f"judge answered HTTP {resp.status}")
                    raw = await resp.read(MAX_ANSWER)
                finally:
                    resp.release()
        except TimeoutError:
            raise ValueError(f"judge timed out after {self.cfg.timeout_ms} ms") from None
        except UpstreamError as exc:
            raise ValueError(f"judge call failed ({exc.kind}): {exc}") from None
        except OSError as exc:
            raise ValueError(f"judge unreachable: {exc}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ValueError("judge answer is not JSON") from None
        if not isinstance(answer, dict) or "score" not in answer:
            raise ValueError('judge answer has no "score"')
        return _probability(answer["score"], HTTP_RULE)


@functools.lru_cache(maxsize=8)
def _judge(key: str) -> HttpJudge:
    return HttpJudge(HttpJudgeConfig.model_validate_json(key))


class External:
    """The configured external detectors of one firewall guard."""

    def __init__(self, cfg: ExternalConfig) -> None:
        self.judge = _judge(cfg.http.model_dump_json()) if cfg.http else None
        self.onnx = _onnx(cfg.onnx.model_dump_json()) if cfg.onnx else None
        self.cfg = cfg
        self.enabled = self.judge is not None or self.onnx is not None
        self.replaces = any(a is not None and a.mode == "replace" for a in (cfg.http, cfg.onnx))

    async def _scores(self, text: str, direction: Direction) -> list[tuple[str, _Adapter, float]]:
        out: list[tuple[str, _Adapter, float]] = []
        if self.onnx is not None and self.cfg.onnx is not None:
            try:
                p = self.onnx.score(text, direction)
            except Exception as exc:
                self._failed(ONNX_RULE, self.cfg.onnx, f"ONNX model failed: {exc}")
            else:
                out.append((ONNX_RULE, self.cfg.onnx, self.cfg.onnx.mapped(p)))
        if self.judge is not None and self.cfg.http is not None:
            try:
                p = await self.judge.score(text, direction)
            except ValueError as exc:
                self._failed(HTTP_RULE, self.cfg.http, f"HTTP judge failed: {exc}")
            else:
                out.append((HTTP_RULE, self.cfg.http, self.cfg.http.mapped(p)))
        return out

    @staticmethod
    def _failed(rule: str, adapter: _Adapter, message: str) -> None:
        log.warning("firewall external detector failed", extra={"rule": rule, "error": message})
        if adapter.fail_mode == "closed":
            raise ExternalFailure(rule, message)

    async def combine(
        self,
        text: str,
        result: ScanResult,
        direction: Direction,
        verdict: Callable[[float], ScanVerdict],
    ) -> ScanResult:
        """``result`` with the external scores folded in; raises ExternalFailure (closed)."""
        if not self.enabled or (result.verdict == "block" and not self.replaces):
            return result  # max can only raise an already-blocking score: save the call
        scores = await self._scores(text, direction)
        if not scores:
            return result
        replaced = [p for _, a, p in scores if a.mode == "replace"]
        score = max([max(replaced) if replaced else result.score, *(p for _, _, p in scores)])
        found = [
            Finding("PROMPT_INJECTION", 0, len(text), rule, p) for rule, _, p in scores if p >= 0.5
        ]
        details: dict[str, Any] = dict(result.details)
        details["builtin"] = round(result.score, 4)
        details.update({rule: round(p, 4) for rule, _, p in scores})
        return ScanResult(verdict(score), score, (*found, *result.findings), details=details)
