"""The one OpenAI-compatible client wrapper: any server that speaks `POST /v1/chat/completions`
(OpenAI, vLLM, Ollama, llama.cpp server), used by the grader and by `ankigen build --llm`.
No endpoint configured means offline mode: `endpoint_from()` returns None and the caller works
without a model. Needs the `llm` extra (openai, pydantic); nothing else in ankigen imports it
unless a model is asked for.

One `LLM` object serves one graded session or one build: its time budget runs from its first
request, and its re-ask allowance (a second chance for a malformed answer) is shared by all its asks.
Retries are ours, not the client's, so the budget and the messages stay in one place.
Only answers that validated are cached; there is never a default or fallback answer.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import openai
import pydantic
from openai.types.chat import ChatCompletionMessageParam

from .errors import EndpointError, EndpointUnavailable, ModelOutputError, OutputError

NO_KEY = "not-needed"  # what we send when OPENAI_API_KEY is unset: local servers want none
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
_MESSAGE_CHARS = 200
_FENCE = re.compile(r"\A\s*```[A-Za-z]*[ \t]*\n(.*?)\n?```\s*\Z", re.S)

T = TypeVar("T", bound=pydantic.BaseModel)


def _seconds(x: float) -> str:
    return f"{round(x, 1):g}"


def _tries(n: int) -> str:
    return f"{n} try" if n == 1 else f"{n} tries"


def _one_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Endpoint:
    """Where to ask and for how long. The key is never printed (not in repr, not in errors)."""

    base_url: str
    model: str
    api_key: str = field(repr=False)
    timeout_s: float = 60.0  # per request
    budget_s: float = 300.0  # total wall time for one session's calls, retries included
    max_tries: int = 5  # per call, for retryable failures

    def __post_init__(self) -> None:
        try:
            parts = urlsplit(self.base_url.strip())
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            ok = False
        if not ok:
            raise EndpointError(
                f"the endpoint URL must be http:// or https:// with a host, like http://127.0.0.1:8000/v1 (got {self.display_url})"
            )
        if not self.model.strip():
            raise EndpointError(f"an endpoint is set ({self.display_url}) but no model: pass --model or set ANKIGEN_MODEL")
        for name, value in (("timeout", self.timeout_s), ("budget", self.budget_s)):
            if not value > 0:
                raise EndpointError(f"the endpoint {name} must be a positive number of seconds (got {value:g})")
        if self.max_tries < 1:
            raise EndpointError(f"the endpoint needs at least 1 try per call (got {self.max_tries})")

    @property
    def display_url(self) -> str:
        """The base URL for messages: no trailing slash, no user:password@."""
        try:
            parts = urlsplit(self.base_url.strip())
            netloc = parts.netloc.rsplit("@", 1)[-1]
            return urlunsplit(parts._replace(netloc=netloc)).rstrip("/")
        except ValueError:
            return repr(self.base_url)


def endpoint_from(
    base_url: str | None = None,
    model: str | None = None,
    *,
    timeout_s: float | None = None,
    budget_s: float | None = None,
    env: Mapping[str, str] = os.environ,
) -> Endpoint | None:
    """The endpoint from flags, else the environment; None when no base URL is set (offline).

    OPENAI_BASE_URL, ANKIGEN_MODEL, OPENAI_API_KEY (absent: "not-needed", for local servers).
    """
    url = (base_url or "").strip() or env.get("OPENAI_BASE_URL", "").strip()
    if not url:
        return None
    name = (model or "").strip() or env.get("ANKIGEN_MODEL", "").strip()
    key = env.get("OPENAI_API_KEY", "").strip() or NO_KEY
    return Endpoint(
        base_url=url,
        model=name,
        api_key=key,
        timeout_s=Endpoint.timeout_s if timeout_s is None else timeout_s,
        budget_s=Endpoint.budget_s if budget_s is None else budget_s,
    )


def default_cache_path() -> Path:
    """grader-llm.sqlite in ankigen's cache folder (ANKIGEN_CACHE_DIR moves it)."""
    from .build import cache_dir  # imported here: ankigen.build pulls in the deck writer

    return cache_dir() / "grader-llm.sqlite"


class ResponseCache:
    """Validated model answers in one SQLite file, keyed by `ResponseCache.key(...)`. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, content TEXT NOT NULL, created REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as e:
            raise OutputError(f"cannot use it as the model answer cache: {_one_line(str(e))}", path=str(self.path)) from None

    @staticmethod
    def key(model: str, prompt_version: str, system: str, user: str) -> str:
        blob = json.dumps([model, prompt_version, system, user], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._run("SELECT content FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, content: str) -> None:
        with self._lock:
            self._run(
                "INSERT OR REPLACE INTO responses (key, content, created) VALUES (?, ?, ?)", (key, content, time.time())
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise OutputError(f"cannot use it as the model answer cache: {_one_line(str(e))}", path=str(self.path)) from None


class _Malformed(Exception):
    """An answer we cannot use; the message says why, in words a model can act on."""


class LLM:
    """Asks one endpoint for JSON answers that fit a pydantic schema (see module docstring)."""

    def __init__(self, endpoint: Endpoint, cache: ResponseCache | None = None, *, reasks: int = 1) -> None:
        if reasks < 0:
            raise ValueError("reasks must be >= 0")
        self.endpoint = endpoint
        self.cache = cache  # owned by the caller: close() leaves it open
        self.reasks = reasks
        self.requests = 0  # HTTP attempts made (retries included)
        self.calls = 0  # answered completions
        self.cache_hits = 0
        self.reasks_used = 0
        self.waits: list[float] = []  # seconds slept before each retry, in order
        self._started: float | None = None  # monotonic time of the first request
        self._lock = threading.Lock()
        self._client = openai.OpenAI(
            base_url=endpoint.base_url.strip(),
            api_key=endpoint.api_key,
            timeout=endpoint.timeout_s,
            max_retries=0,
        )

    def __enter__(self) -> LLM:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- asking -----------------------------------------------------------------------------

    def ask(
        self,
        *,
        system: str,
        user: str,
        schema: type[T],
        prompt_version: str,
        check: Callable[[T], None] | None = None,
        max_reasks: int | None = None,
    ) -> T:
        """The model's answer to (system, user) as a validated `schema` object.

        `check` may raise ValueError for an answer that fits the schema but is wrong (it cites a
        passage that does not exist...): that counts as malformed, like bad JSON.
        `max_reasks` caps this ask's re-asks below the shared allowance (a build asks once per
        file, each with its own second chance). Raises EndpointError (refused, out of tries),
        EndpointUnavailable (unreachable, out of time) or ModelOutputError.
        """
        ep = self.endpoint
        key = ResponseCache.key(ep.model, prompt_version, system, user)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                try:
                    obj = self._parse(cached, "stop", schema, check)
                except _Malformed:
                    pass  # the schema or check changed since: ask again
                else:
                    with self._lock:
                        self.cache_hits += 1
                    return obj
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        content, finish = self._complete(messages)
        failures = 0
        while True:
            try:
                obj = self._parse(content, finish, schema, check)
            except _Malformed as e:
                failures += 1
                reason = str(e)
                if (max_reasks is not None and failures > max_reasks) or not self._take_reask():
                    times = {1: "", 2: " twice"}.get(failures, f" {failures} times")
                    raise ModelOutputError(
                        self._redact(f"{ep.model} at {ep.display_url} answered malformed output{times}: {reason}")
                    ) from None
                retry: list[ChatCompletionMessageParam] = [
                    *messages,
                    {"role": "assistant", "content": content or ""},
                    {
                        "role": "user",
                        "content": f"Your answer could not be used: {reason}. "
                        "Reply with only the corrected JSON object: no prose, no code fence.",
                    },
                ]
                content, finish = self._complete(retry)
                continue
            if self.cache is not None:
                self.cache.put(key, _unfence(content or ""))
            return obj

    def _take_reask(self) -> bool:
        with self._lock:
            if self.reasks_used >= self.reasks:
                return False
            self.reasks_used += 1
            return True

    @staticmethod
    def _parse(content: str | None, finish: str | None, schema: type[T], check: Callable[[T], None] | None) -> T:
        if content is None or not content.strip():
            raise _Malformed("the answer was empty")
        text = _unfence(content)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            cut = "it was cut off at the length limit, " if finish == "length" else ""
            raise _Malformed(f"{cut}not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
        try:
            obj = schema.model_validate(data)
        except pydantic.ValidationError as e:
            raise _Malformed(f"the JSON does not fit the schema: {_schema_problems(e)}") from None
        if check is not None:
            try:
                check(obj)
            except ValueError as e:
                raise _Malformed(_one_line(str(e) or type(e).__name__, 300)) from None
        return obj

    # -- one completion, with our retries ------------------------------------------------------

    def _complete(self, messages: list[ChatCompletionMessageParam]) -> tuple[str | None, str | None]:
        """(content, finish_reason) of one answered completion, retrying what is worth it."""
        ep = self.endpoint
        url = ep.display_url
        tries = 0
        last = ""
        only_unreachable = True
        while True:
            with self._lock:
                if self._started is None:
                    self._started = time.monotonic()
                started = self._started
            left = ep.budget_s - (time.monotonic() - started)
            if left <= 0:
                raise self._out_of_time(tries, last)
            tries += 1
            with self._lock:
                self.requests += 1
            attempt_timeout = min(ep.timeout_s, left)
            wait: float | None = None
            try:
                completion = self._client.chat.completions.create(
                    model=ep.model,
                    messages=messages,
                    temperature=0,
                    response_format={"type": "json_object"},
                    stream=False,
                    timeout=attempt_timeout,
                )
            except openai.APITimeoutError:
                last = f"timed out after {_seconds(attempt_timeout)}s"
                only_unreachable = False
            except openai.APIConnectionError as e:
                last = _connection_reason(e)
            except openai.APIStatusError as e:
                only_unreachable = False
                status = e.status_code
                if status not in RETRY_STATUSES and status < 500:
                    raise self._refused(e) from None
                last = f"{status} {_phrase(e)}"
                wait = _retry_after(e.response.headers)
                if wait:
                    last += f", asked to wait {_seconds(wait)}s"
            except (openai.OpenAIError, ValueError) as e:  # a 200 whose body is not a completion
                raise EndpointError(
                    self._redact(f"{url} answered with something that is not a chat completion ({_one_line(str(e))})")
                ) from None
            else:
                with self._lock:
                    self.calls += 1
                if not completion.choices:
                    raise EndpointError(f"{url} answered with something that is not a chat completion (no choices)")
                choice = completion.choices[0]
                return choice.message.content, choice.finish_reason
            # a retryable failure
            if tries >= ep.max_tries:
                if only_unreachable:
                    raise EndpointUnavailable(self._redact(f"cannot reach {url}: {last}"))
                raise EndpointError(self._redact(f"{url}: no answer after {_tries(tries)} (last: {last})"))
            if wait is None:
                wait = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (tries - 1)) * random.uniform(0.5, 1.0)
            left = ep.budget_s - (time.monotonic() - started)
            if wait >= left:
                if only_unreachable:
                    raise EndpointUnavailable(self._redact(f"cannot reach {url}: {last}"))
                raise self._out_of_time(tries, last)
            with self._lock:
                self.waits.append(wait)
            time.sleep(wait)

    def _out_of_time(self, tries: int, last: str) -> EndpointError:
        ep = self.endpoint
        budget = _seconds(ep.budget_s)
        if not tries:
            return EndpointUnavailable(f"{ep.display_url}: the {budget}s budget for this session's model calls is spent")
        return EndpointUnavailable(
            self._redact(f"{ep.display_url}: no answer within the {budget}s budget after {_tries(tries)} (last: {last})")
        )

    def _refused(self, e: openai.APIStatusError) -> EndpointError:
        ep = self.endpoint
        url = ep.display_url
        status = e.status_code
        if status in (401, 403):
            return EndpointError(f"{url} refused the API key ({status}): check OPENAI_API_KEY")
        said = _server_message(e)
        if status == 404:
            text = f"{url} does not serve model '{ep.model}' (404: {said}): check --model or ANKIGEN_MODEL, and the base URL"
        else:
            text = f"{url} rejected the request ({status} {_phrase(e)}): {said}"
        return EndpointError(self._redact(text))

    def _redact(self, text: str) -> str:
        key = self.endpoint.api_key
        if key and key != NO_KEY and len(key) >= 4:
            text = text.replace(key, "***")
        return text


# -- helpers ---------------------------------------------------------------------------------


def _unfence(content: str) -> str:
    m = _FENCE.match(content)
    return m.group(1).strip() if m else content.strip()


def _schema_problems(e: pydantic.ValidationError, shown: int = 3) -> str:
    errors = e.errors(include_url=False)
    parts = []
    for err in errors[:shown]:
        where = ".".join(str(p) for p in err["loc"]) or "the answer"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return _one_line("; ".join(parts), 300) + more


def _phrase(e: openai.APIStatusError) -> str:
    phrase = e.response.reason_phrase
    if not phrase:
        try:
            phrase = HTTPStatus(e.status_code).phrase
        except ValueError:
            phrase = "error"
    return phrase


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"].strip():
        return _one_line(body["message"])
    if isinstance(body, str) and body.strip():
        return _one_line(body)
    return _phrase(e)


def _connection_reason(e: openai.APIConnectionError) -> str:
    chain: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    if any(isinstance(c, ConnectionRefusedError) or "refused" in str(c).lower() for c in chain):
        return "connection refused"
    for c in chain[1:]:
        if str(c).strip():
            return _one_line(str(c), 120)
    return "connection error"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, retry-after seconds or date), if any."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return None
