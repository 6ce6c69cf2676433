"""grader.llm over real HTTP: the real openai client talks to a scripted loopback server."""

from __future__ import annotations

import json
from typing import Any, Literal

import openai
import pydantic
import pytest
from fake_openai import FakeOpenAI, Reply, closed_port

from ankigen.errors import EndpointError, ModelOutputError
from ankigen.llm import LLM, Endpoint, ResponseCache, default_cache_path, endpoint_from

pytestmark = pytest.mark.timeout(30)

KEY = "sk-test-secret-4242"
MODEL = "test-model"
GOOD = {"verdict": "green", "reason": "it matches the source"}
NOT_JSON = "not valid JSON (Expecting value: line 1 column 1)"


class Verdict(pydantic.BaseModel):
    verdict: Literal["green", "yellow", "red"]
    reason: str


def endpoint(srv: FakeOpenAI | str, **kw: Any) -> Endpoint:
    url = srv if isinstance(srv, str) else srv.base_url
    options: dict[str, Any] = {"timeout_s": 2.0, "budget_s": 10.0, "max_tries": 5} | kw
    return Endpoint(url, MODEL, KEY, **options)


def ask(llm: LLM, **kw: Any) -> Verdict:
    options: dict[str, Any] = {"system": "You grade.", "user": "Grade this.", "schema": Verdict, "prompt_version": "v1"}
    return llm.ask(**(options | kw))


def raised(exc_type: type[Exception], fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    message = str(info.value)
    assert KEY not in message and "\n" not in message
    return message


# -- the request and the happy path -------------------------------------------------------------


def test_happy_path_sends_one_plain_json_mode_request():
    with FakeOpenAI([Reply(GOOD)], api_key=KEY) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm) == Verdict(**GOOD)
        (body,) = srv.requests
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["stream"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"] == [
        {"role": "system", "content": "You grade."},
        {"role": "user", "content": "Grade this."},
    ]
    assert (llm.requests, llm.calls, llm.cache_hits, llm.reasks_used, llm.waits) == (1, 1, 0, 0, [])


def test_a_json_fence_around_the_answer_is_stripped():
    fenced = "```json\n" + json.dumps(GOOD) + "\n```"
    with FakeOpenAI([Reply(fenced)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm) == Verdict(**GOOD)
        assert llm.reasks_used == 0


# -- retries, timeouts, budget -------------------------------------------------------------------


def test_429_waits_what_retry_after_says_then_succeeds():
    script = [Reply(status=429, headers={"Retry-After": "0.2"}), Reply(GOOD)]
    with FakeOpenAI(script) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm).verdict == "green"
        assert len(srv.requests) == 2 and srv.completions == 1
    assert (llm.requests, llm.calls, llm.waits) == (2, 1, [0.2])


def test_500_backs_off_then_succeeds():
    with FakeOpenAI([Reply(status=500), Reply(GOOD)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm).verdict == "green"
    assert (llm.requests, llm.calls, len(llm.waits)) == (2, 1, 1)
    assert 0.125 <= llm.waits[0] <= 0.25  # the first backoff: 0.25 s with jitter


def test_a_reply_slower_than_the_timeout_is_retried():
    with FakeOpenAI([Reply(GOOD, delay_s=3.0), Reply(GOOD)]) as srv, LLM(endpoint(srv, timeout_s=0.5)) as llm:
        assert ask(llm).verdict == "green"
        assert len(srv.requests) == 2 and srv.completions == 1
    assert (llm.requests, llm.calls) == (2, 1)


def test_out_of_tries_names_the_last_failure():
    always_500 = lambda body: Reply(status=500, headers={"Retry-After": "0"})  # noqa: E731
    with FakeOpenAI(always_500) as srv, LLM(endpoint(srv, max_tries=3)) as llm:
        message = raised(EndpointError, ask, llm)
        assert message == f"{srv.base_url}: no answer after 3 tries (last: 500 Internal Server Error)"
        assert len(srv.requests) == 3


def test_a_retry_after_beyond_the_budget_gives_up_at_once():
    script = [Reply(status=429, headers={"Retry-After": "60"})] * 3
    with FakeOpenAI(script) as srv, LLM(endpoint(srv, budget_s=5)) as llm:
        message = raised(EndpointError, ask, llm)
        assert message == (
            f"{srv.base_url}: no answer within the 5s budget after 1 try "
            "(last: 429 Too Many Requests, asked to wait 60s)"
        )
        assert len(srv.requests) == 1 and llm.waits == []


def test_each_attempt_gets_at_most_what_is_left_of_the_budget():
    with FakeOpenAI([Reply(GOOD, delay_s=3.0)] * 3) as srv, LLM(endpoint(srv, timeout_s=5, budget_s=0.5)) as llm:
        message = raised(EndpointError, ask, llm)
        assert message == f"{srv.base_url}: no answer within the 0.5s budget after 1 try (last: timed out after 0.5s)"
        # The budget is the session's: a later ask does not start a new one.
        assert raised(EndpointError, ask, llm, user="Another.") == (
            f"{srv.base_url}: the 0.5s budget for this session's model calls is spent"
        )
        assert len(srv.requests) == 1


def test_an_unreachable_endpoint_is_retried_then_named():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with LLM(endpoint(url, max_tries=2)) as llm:
        assert raised(EndpointError, ask, llm) == f"cannot reach {url}: connection refused"
    assert (llm.requests, llm.calls, len(llm.waits)) == (2, 0, 1)


# -- refusals: no retry --------------------------------------------------------------------------


def test_a_wrong_key_fails_at_once_without_showing_the_key():
    with FakeOpenAI([Reply(GOOD)], api_key="sk-the-right-one") as srv, LLM(endpoint(srv)) as llm:
        message = raised(EndpointError, ask, llm)
        assert message == f"{srv.base_url} refused the API key (401): check OPENAI_API_KEY"
        assert len(srv.requests) == 1 and srv.completions == 0


def test_403_is_a_refused_key_too():
    with FakeOpenAI([Reply(status=403)]) as srv, LLM(endpoint(srv)) as llm:
        assert raised(EndpointError, ask, llm) == f"{srv.base_url} refused the API key (403): check OPENAI_API_KEY"
        assert len(srv.requests) == 1


def test_404_names_the_model():
    with FakeOpenAI([Reply("The model `test-model` does not exist", status=404)]) as srv, LLM(endpoint(srv)) as llm:
        assert raised(EndpointError, ask, llm) == (
            f"{srv.base_url} does not serve model 'test-model' (404: The model `test-model` does not exist): "
            "check --model or ANKIGEN_MODEL, and the base URL"
        )
        assert len(srv.requests) == 1


def test_other_4xx_give_the_server_message_on_one_line_without_the_key():
    said = f"max_tokens is too large\nfor this model (key {KEY}) " + "x" * 300
    with FakeOpenAI([Reply(said, status=400)]) as srv, LLM(endpoint(srv)) as llm:
        message = raised(EndpointError, ask, llm)
        assert message.startswith(
            f"{srv.base_url} rejected the request (400 Bad Request): max_tokens is too large for this model (key ***) xxx"
        )
        assert message.endswith("x…") and len(srv.requests) == 1


def test_a_body_that_is_not_a_completion_is_an_endpoint_error():
    with FakeOpenAI([Reply(raw_body="<html>proxy error</html>")]) as srv, LLM(endpoint(srv)) as llm:
        assert raised(EndpointError, ask, llm) == (
            f"{srv.base_url} answered with something that is not a chat completion "
            "(Expecting value: line 1 column 1 (char 0))"
        )
        assert len(srv.requests) == 1


# -- malformed answers and the re-ask ------------------------------------------------------------


def test_malformed_json_is_re_asked_once_naming_the_problem():
    with FakeOpenAI([Reply("Sure! Here it is: {"), Reply(GOOD)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm).verdict == "green"
        first, second = srv.requests
    assert (llm.requests, llm.calls, llm.reasks_used) == (2, 2, 1)
    assert second["messages"][:2] == first["messages"]
    assert second["messages"][2] == {"role": "assistant", "content": "Sure! Here it is: {"}
    last = second["messages"][3]
    assert last["role"] == "user"
    assert f"could not be used: {NOT_JSON}." in last["content"]
    assert "only the corrected JSON" in last["content"]


def test_malformed_twice_is_a_model_output_error():
    with FakeOpenAI([Reply("nope"), Reply("still nope")]) as srv, LLM(endpoint(srv)) as llm:
        message = raised(ModelOutputError, ask, llm)
        assert message == f"test-model at {srv.base_url} answered malformed output twice: {NOT_JSON}"
        assert len(srv.requests) == 2


def test_an_answer_that_does_not_fit_the_schema_is_re_asked():
    wrong = {"verdict": "purple", "reason": "?"}
    with FakeOpenAI([Reply(wrong), Reply(GOOD)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm).verdict == "green"
        problem = srv.requests[1]["messages"][-1]["content"]
    assert "the JSON does not fit the schema: verdict: Input should be 'green', 'yellow' or 'red'" in problem
    assert llm.reasks_used == 1


def test_a_failed_check_is_re_asked():
    def check(v: Verdict) -> None:
        if v.verdict != "red":
            raise ValueError("claim 3 is contradicted by passage 2, so it cannot be green")

    red = {"verdict": "red", "reason": "contradicted"}
    with FakeOpenAI([Reply(GOOD), Reply(red)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm, check=check).verdict == "red"
        problem = srv.requests[1]["messages"][-1]["content"]
    assert "could not be used: claim 3 is contradicted by passage 2, so it cannot be green." in problem


def test_an_empty_or_cut_off_answer_is_malformed():
    script = [Reply(None), Reply('{"verdict": "gr', finish_reason="length")]
    with FakeOpenAI(script) as srv, LLM(endpoint(srv)) as llm:
        message = raised(ModelOutputError, ask, llm)
        assert "could not be used: the answer was empty." in srv.requests[1]["messages"][-1]["content"]
    assert message == (
        f"test-model at {srv.base_url} answered malformed output twice: it was cut off at the length limit, "
        "not valid JSON (Unterminated string starting at: line 1 column 13)"
    )


def test_the_re_ask_allowance_is_per_llm_object_not_per_ask():
    with FakeOpenAI([Reply("bad"), Reply(GOOD), Reply("bad again"), Reply(GOOD)]) as srv, LLM(endpoint(srv)) as llm:
        assert ask(llm, user="first").verdict == "green"
        message = raised(ModelOutputError, ask, llm, user="second")
        assert message == f"test-model at {srv.base_url} answered malformed output: {NOT_JSON}"
        assert len(srv.requests) == 3 and llm.reasks_used == 1


def test_no_re_ask_when_none_is_allowed():
    with FakeOpenAI([Reply("bad"), Reply(GOOD)]) as srv, LLM(endpoint(srv), reasks=0) as llm:
        assert raised(ModelOutputError, ask, llm) == f"test-model at {srv.base_url} answered malformed output: {NOT_JSON}"
        assert len(srv.requests) == 1


# -- the cache -----------------------------------------------------------------------------------


def test_the_cache_answers_a_repeated_ask_without_http(tmp_path):
    cache = ResponseCache(tmp_path / "llm.sqlite")
    with FakeOpenAI([Reply(GOOD), Reply({"verdict": "red", "reason": "v2"})]) as srv:
        with LLM(endpoint(srv), cache) as llm:
            assert ask(llm).verdict == "green"
            assert ask(llm).verdict == "green"
            assert (llm.requests, llm.cache_hits) == (1, 1)
            assert ask(llm, prompt_version="v2").verdict == "red"
            assert (llm.requests, llm.cache_hits) == (2, 1)
        with LLM(endpoint(srv), cache) as later:  # another session, same file
            assert ask(later).verdict == "green" and later.requests == 0
    cache.close()


def test_only_validated_answers_are_cached_under_the_original_prompt(tmp_path):
    fenced = "```json\n" + json.dumps(GOOD) + "\n```"
    with ResponseCache(tmp_path / "llm.sqlite") as cache, FakeOpenAI([Reply("bad"), Reply(fenced)]) as srv:
        with LLM(endpoint(srv), cache) as llm:
            assert ask(llm).verdict == "green"
        key = ResponseCache.key(MODEL, "v1", "You grade.", "Grade this.")
        assert json.loads(cache.get(key) or "") == GOOD
        with LLM(endpoint(srv), cache) as later:
            assert ask(later).verdict == "green" and later.requests == 0


def test_a_cached_answer_that_no_longer_validates_is_asked_again(tmp_path):
    with ResponseCache(tmp_path / "llm.sqlite") as cache, FakeOpenAI([Reply(GOOD)]) as srv:
        cache.put(ResponseCache.key(MODEL, "v1", "You grade.", "Grade this."), '{"verdict": "old"}')
        with LLM(endpoint(srv), cache) as llm:
            assert ask(llm).verdict == "green"
            assert (llm.requests, llm.cache_hits) == (1, 0)


def test_default_cache_path_follows_ankigen_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path))
    assert default_cache_path() == tmp_path / "grader-llm.sqlite"


# -- configuration -------------------------------------------------------------------------------


def test_endpoint_from_flag_over_environment():
    env = {"OPENAI_BASE_URL": "http://env:1/v1", "ANKIGEN_MODEL": "env-model", "OPENAI_API_KEY": "sk-env"}
    assert endpoint_from(env={}) is None
    assert endpoint_from(model="m", env={}) is None  # no URL anywhere: offline
    assert endpoint_from(env=env) == Endpoint("http://env:1/v1", "env-model", "sk-env")
    got = endpoint_from("http://flag:2/v1", "flag-model", timeout_s=3, budget_s=4, env=env)
    assert got == Endpoint("http://flag:2/v1", "flag-model", "sk-env", timeout_s=3, budget_s=4)
    local = endpoint_from(env={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "ANKIGEN_MODEL": "llama3.2"})
    assert local is not None and local.api_key == "not-needed"


def test_endpoint_from_errors():
    assert raised(EndpointError, endpoint_from, "http://127.0.0.1:8000/v1", env={}) == (
        "an endpoint is set (http://127.0.0.1:8000/v1) but no model: pass --model or set ANKIGEN_MODEL"
    )
    assert raised(EndpointError, endpoint_from, env={"OPENAI_BASE_URL": "ftp://host/v1", "ANKIGEN_MODEL": "m"}) == (
        "the endpoint URL must be http:// or https:// with a host, like http://127.0.0.1:8000/v1 (got ftp://host/v1)"
    )
    assert raised(EndpointError, endpoint_from, "127.0.0.1:8000/v1", "m", env={}) == (
        "the endpoint URL must be http:// or https:// with a host, like http://127.0.0.1:8000/v1 (got 127.0.0.1:8000/v1)"
    )
    assert raised(EndpointError, endpoint_from, "http://h/v1", "m", timeout_s=0, env={}) == (
        "the endpoint timeout must be a positive number of seconds (got 0)"
    )


def test_the_key_is_never_shown():
    ep = Endpoint("http://127.0.0.1:1/v1", MODEL, KEY)
    assert KEY not in repr(ep) and KEY not in str(ep)
    assert "api_key" not in repr(ep)


# -- the fake server itself ----------------------------------------------------------------------


def test_fake_server_speaks_enough_openai():
    with FakeOpenAI([], model="m1") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=2)
        assert [m.id for m in client.models.list()] == ["m1"]
        with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
            client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}], stream=True)
        with pytest.raises(openai.InternalServerError, match="fake server: script exhausted"):
            client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
        assert len(srv.requests) == 2 and srv.completions == 0
        client.close()


def test_fake_server_stops_by_itself():
    srv = FakeOpenAI([Reply(GOOD)], lifetime_s=0.1)
    assert srv.wait_stopped(5)
    with LLM(endpoint(srv, max_tries=1)) as llm:
        assert raised(EndpointError, ask, llm) == f"cannot reach {srv.base_url}: connection refused"
    assert srv.requests == []
