"""The judge call: whole sources when they fit, retrieval when not; omissions the model
proposes, checked; doubts that are opinions, not marks. Real HTTP to the scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Reply
from scripted_model import Tutor, data_of, is_decompose

from ankigen.llm import Endpoint
from ankigen.model import Mark
from ankigen.parse import parse_text
from grader.context import estimate_tokens, fits, pieces
from grader.grade import GradeOptions, grade_recall
from grader.judge import JUDGE_SYSTEM, JUDGE_WHOLE_SYSTEM, is_bare_api
from grader.model import Verdict
from grader.recall import load_recall, recall_from_text
from grader.report import calls_summary
from grader.sources import load_sources

pytestmark = pytest.mark.timeout(120)
FIXTURES = Path(__file__).parent / "fixtures"
LABELLED = FIXTURES / "labelled"


def run(tmp_path, script, recall, sources, **kw):
    with FakeOpenAI(script) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "k", timeout_s=5, budget_s=30)
        report = grade_recall(recall, sources, GradeOptions(
            endpoint=endpoint, run_code=False, cache_path=tmp_path / "c.db", **kw))
        return report, list(srv.requests)


def judge_request(bodies):
    return next(b for b in bodies if not is_decompose(b))


@pytest.fixture(scope="module")
def cnn():
    return load_sources([LABELLED / "cnn" / "sources"])


def test_sources_that_fit_are_shown_whole_grouped_by_section(tmp_path, cnn):
    recall = load_recall(LABELLED / "cnn" / "recall.md")
    report, bodies = run(tmp_path, Tutor(), recall, cnn)
    body = judge_request(bodies)
    assert body["messages"][0]["content"] == JUDGE_WHOLE_SYSTEM
    data = data_of(body)
    shown = [p["id"] for g in data["sources"] for p in g["passages"]]
    assert shown == [f"P{p.id + 1}" for p in cnn.passages]  # every passage, in order
    sections = [g["section"] for g in data["sources"]]
    assert sections[:3] == ["Convolutional neural networks › Why convolutions",
                            "Convolutional neural networks › The convolutional layer",
                            "Convolutional neural networks › Padding"]
    assert all("passages" not in c for c in data["claims"])  # any passage may be cited
    assert [p["part"] for p in data["parts"]] == [1, 2, 3, 4, 5, 6]
    assert len(bodies) == 2 and report.llm_calls == 2


def test_each_part_comes_with_its_candidate_key_points_and_its_prompted_paragraphs(tmp_path):
    """What offline would mark goes with each part (the real model never proposed
    transfer-learning 3's discriminative learning rates), and in a re-graded session the
    paragraphs written after the tutor's remark are named: what they add is still left out."""
    session = LABELLED / "decision-trees"
    recall = recall_from_text((session / "recall.md").read_text(), str(session / "recall.md"))
    _, bodies = run(tmp_path, Tutor(), recall, load_sources([session / "sources"]))
    data = data_of(judge_request(bodies))
    keys = {p["part"]: [k["point"] for k in p["candidate_key_points"]] for p in data["parts"]}
    assert keys[3] == ["Sensitivity to Axis Orientation"] and keys[5] == ["Extra-Trees"]
    assert "Stacking" in keys[6]
    late = {p["part"]: p["after_feedback"] for p in data["parts"] if "after_feedback" in p}
    (line,) = late[6]
    assert recall.lines[line - 1].startswith("Right, stacking.")
    assert all(k["passage"] in {q["id"] for g in data["sources"] for q in g["passages"]}
               for p in data["parts"] for k in p["candidate_key_points"])


def test_a_claim_may_cite_a_passage_retrieval_would_not_have_offered(tmp_path, cnn):
    """"Pooling halves the channels" is settled by the pooling passage, whatever BM25 ranks."""
    pooling = next(p for p in cnn.passages if "same number of channels" in p.text)
    wrong = {"number of channels": "the same number of channels as its input"}
    recall = load_recall(LABELLED / "cnn" / "recall.md")
    report, _ = run(tmp_path, Tutor(wrong=wrong), recall, cnn)
    reds = [j for j in report.parts[3].judgements if j.verdict is Verdict.CONTRADICTED]
    assert reds and all(j.passage == pooling for j in reds)
    assert report.marks[3] is Mark.RED


def test_sources_over_the_budget_go_by_retrieval(tmp_path, cnn):
    recall = load_recall(LABELLED / "cnn" / "recall.md")
    report, bodies = run(tmp_path, Tutor(), recall, cnn, context_tokens=4_000)
    body = judge_request(bodies)
    assert body["messages"][0]["content"] == JUDGE_SYSTEM
    data = data_of(body)
    assert "sources" not in data and 0 < len(data["passages"]) <= len(cnn.passages)
    # each claim its own list: its best ten, and the passages beside its best three
    assert all(1 <= len(c["passages"]) <= 16 for c in data["claims"])
    assert max(len(c["passages"]) for c in data["claims"]) < len(cnn.passages)
    assert all("candidate_key_points" in p for p in data["parts"])
    assert report.llm_calls == 2


def test_the_token_estimate_errs_high_and_the_budget_keeps_a_margin(tmp_path, cnn):
    recall = load_recall(LABELLED / "cnn" / "recall.md")
    _, bodies = run(tmp_path, Tutor(), recall, cnn)
    body = judge_request(bodies)
    for text in (body["messages"][0]["content"], body["messages"][1]["content"],
                 (LABELLED / "tensors-autograd" / "sources" / "pytorch-tensors-autograd.md")
                 .read_text(), "🟢 => ñandú, 東京, ∑ x_i² ≤ 1e-3"):
        floor = pieces(text)  # no byte-level BPE makes fewer tokens than this
        assert estimate_tokens(text) >= 1.3 * floor
        assert estimate_tokens(text) <= len(text.encode("utf-8"))
    # The| kernel|'s| weights|,| e|.| g|.| 3|x|3|.
    assert pieces("The kernel's weights, e.g. 3x3.") == 13
    user = body["messages"][1]["content"]
    need = estimate_tokens(JUDGE_WHOLE_SYSTEM) + estimate_tokens(user)
    claims = len(data_of(body)["claims"])
    assert fits(JUDGE_WHOLE_SYSTEM, user, claims, 32_000)
    assert not fits(JUDGE_WHOLE_SYSTEM, user, claims, need + 1)  # the margin and the answer


SESSION = """# Notes

So, pooling. Max pooling takes the largest value in each window and average pooling the mean.
Pooling has no weights at all. Yann LeCun was born in France.

---

So, a typical CNN. You stack conv, ReLU and pooling blocks; the maps get smaller and more
numerous as you go up, and at the top you flatten into dense layers.
"""


def omitting(points):
    """A model that supports every claim and reports `points` ((part, point, passage id))."""
    tutor = Tutor()

    def script(body):
        data = data_of(body)
        if is_decompose(body):
            return Reply(tutor.decompose(data))
        answer = tutor.judge(data)
        answer["omissions"] = [{"part": part, "point": point, "passage": pid,
                                "severity": "minor", "why": "a teacher expects it"}
                               for part, point, pid in points]
        return Reply(answer)
    return script


def test_omissions_the_model_proposes_are_checked(tmp_path, cnn):
    gap = next(p for p in cnn.passages if "Global average pooling" in p.text)
    maxpool = next(p for p in cnn.passages if "Max pooling" in p.text)
    gid, mid = f"P{gap.id + 1}", f"P{maxpool.id + 1}"
    points = [(2, "global average pooling", gid),   # kept
              (2, "global average pooling", mid),   # the same point twice: once
              (1, "max pooling", mid),              # the recall says it: dropped
              (1, "translation invariance", "P999"),  # cites no passage shown: dropped
              (2, "nn.AdaptiveAvgPool2d(1)", gid)]  # a bare API name: dropped
    report, _ = run(tmp_path, omitting(points), recall_from_text(SESSION, "s.md"), cnn)
    pooling, typical = report.parts
    assert pooling.omissions == ()
    (o,) = typical.omissions
    assert (o.part, o.point, o.passage) == (1, "global average pooling", gap)
    assert typical.mark is Mark.YELLOW
    graded = report.graded_markdown
    assert "🟡 => you left out global average pooling." in graded
    # numbered from 1 in the JSON report, as in the prompts and the terminal
    data = report.to_dict()
    assert [p["index"] for p in data["parts"]] == [1, 2]
    assert data["parts"][1]["omissions"][0]["part"] == 2
    assert {j["claim"]["part"] for j in data["parts"][0]["judgements"]} == {1}


def test_a_doubt_is_an_opinion_never_a_mark_and_every_unverified_statement_is_listed(
        tmp_path, cnn):
    many = "\n".join(f"Fact {n}: Yann LeCun ate {n} croissants in Paris in {1980 + n}."
                     for n in range(8))
    text = SESSION.replace("Yann LeCun was born in France.", many)
    tutor = Tutor(unknown=("Yann LeCun",),
                  doubt={"ate 3 croissants": "nothing records what LeCun ate in 1983."})
    report, _ = run(tmp_path, tutor, recall_from_text(text, "s.md"), cnn)
    pooling = report.parts[0]
    absent = [j for j in pooling.judgements if j.verdict is Verdict.NOT_IN_SOURCE]
    assert len(absent) == 8
    assert pooling.mark is None  # a doubt makes no mark (and 8 of 10 unsettled: no 🟢)
    assert pooling.unverified[0] == ("doubtful (not in your sources): “Fact 3: Yann LeCun ate 3 "
                                     "croissants in Paris in 1983.” nothing records what LeCun "
                                     "ate in 1983.")
    assert len(pooling.unverified) == 8 and not any("more" in u for u in pooling.unverified)
    doc = parse_text(report.graded_markdown, "graded.md")
    assert doc.parts[0].assessments == ()  # notes, not marks
    # ankigen reads them as notes too: no card asks for, or answers with, a doubt
    assert not any("croissants" in f"{g.prompt} {g.answer}" for g in doc.gaps)
    assert report.graded_markdown.count("=> unverified: “Fact") == 7
    assert "=> doubtful (not in your sources): “Fact 3:" in report.graded_markdown


def test_the_summary_counts_calls_and_cache_hits_in_words(tmp_path, cnn):
    assert calls_summary(1, 1) == "1 call, 1 cache hit"
    assert calls_summary(2, 0) == "2 calls, 0 cache hits"
    recall = recall_from_text(SESSION, "s.md")
    run(tmp_path, Tutor(), recall, cnn)
    again, bodies = run(tmp_path, Tutor(), recall, cnn)
    assert bodies == [] and (again.llm_calls, again.llm_cache_hits) == (0, 2)


@pytest.mark.parametrize(("point", "bare"), [
    ("nn.AdaptiveAvgPool2d(1)", True), ("torch.float32", True), ("max_samples", True),
    ("BatchNorm1d", True), ("`retain_grad()`", True), ("stacking", False), ("AdamW", False),
    ("global average pooling", False), ("inference mode (`torch.inference_mode()`)", False),
])
def test_a_bare_api_name_is_not_an_omission(point, bare):
    assert is_bare_api(point) is bare


def test_the_prompts_are_valid_json_examples():
    for system in (JUDGE_SYSTEM, JUDGE_WHOLE_SYSTEM):
        example = system.split("Reply as: ", 1)[1]
        assert json.loads(example)["omissions"][0]["passage"] == "P7"


def test_the_budget_is_a_setting_of_the_cli(tmp_path):
    from click.testing import CliRunner

    from grader.cli import main

    session = LABELLED / "cnn"
    with FakeOpenAI(Tutor()) as srv:
        env = {"OPENAI_BASE_URL": srv.base_url, "ANKIGEN_MODEL": "scripted",
               "ANKIGEN_CACHE_DIR": str(tmp_path)}
        args = ["grade", str(session / "recall.md"), "-s", str(session / "sources"), "--no-code"]
        whole = CliRunner().invoke(main, args, env=env)
        small = CliRunner().invoke(main, [*args, "--no-cache", "--context-tokens", "4000"],
                                   env=env)
        systems = [b["messages"][0]["content"] for b in srv.requests if not is_decompose(b)]
    assert whole.exit_code == small.exit_code == 0, whole.output + small.output
    assert systems == [JUDGE_WHOLE_SYSTEM, JUDGE_SYSTEM]
    bad = CliRunner().invoke(main, [*args, "--context-tokens", "10"])
    assert bad.exit_code == 2 and "10 is not in the range x>=1000" in bad.output


def test_a_doubt_keeps_a_part_from_green_without_marking_it(tmp_path, cnn):
    """Two statements supported, one the sources leave open and the model doubts: 2 of 3
    would be 🟢; the doubt takes the 🟢 away and adds no mark of its own."""
    text = ("# Notes\n\nSo, pooling. Max pooling takes the largest value in each window. "
            "Pooling layers have no weights at all, they just aggregate. Yann LeCun invented "
            "max pooling in 1975.\n")
    plain, _ = run(tmp_path, Tutor(unknown=("Yann LeCun",)), recall_from_text(text, "a.md"), cnn)
    assert plain.marks == (Mark.GREEN,)
    doubted, _ = run(tmp_path / "b", Tutor(unknown=("Yann LeCun",), doubt={
        "Yann LeCun": "max pooling came later than 1975."}), recall_from_text(text, "b.md"), cnn)
    assert doubted.marks == (None,) and doubted.parts[0].assessments == ()
    assert doubted.parts[0].unverified[0].startswith("doubtful (not in your sources): “Yann")
