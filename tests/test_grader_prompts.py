"""What the model is shown: the learner's words in whole paragraphs, code as code with its run
result, and no tutor lines. Real HTTP to the scripted loopback model; real sandboxed runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai import FakeOpenAI
from scripted_model import Tutor, data_of, is_decompose

from ankigen.llm import Endpoint
from grader.grade import GradeOptions, grade_recall
from grader.recall import load_recall, recall_from_text
from grader.sources import load_sources

pytestmark = pytest.mark.timeout(120)
LABELLED = Path(__file__).parent / "fixtures" / "labelled"

SESSION = """# Notes

So, autograd. Here is the step from memory:

```python
import torch
x = torch.tensor([1., 2., 3.], requires_grad=True)
y = (x ** 2).sum()
y.backward()
print(x.grad)
```

The .grad should come out as 2, 4, 6 because the derivative of x squared is 2x. To keep
an intermediate gradient I forgot the name of the method => the name is retain_grad()

---

So, the int tensor. This one I am less sure about:

```python
import torch
t = torch.tensor([1, 2, 3], requires_grad=True)
```

> Only floating point tensors can require gradients.
"""


def test_code_travels_as_code_with_its_run_result_and_tutor_lines_stay_out(tmp_path):
    sources = load_sources([LABELLED / "tensors-autograd" / "sources"])
    with FakeOpenAI(Tutor()) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "k", timeout_s=5, budget_s=30)
        report = grade_recall(recall_from_text(SESSION, "autograd.md"), sources,
                              GradeOptions(endpoint=endpoint, cache_path=tmp_path / "c.db"))
        bodies = list(srv.requests)
    assert [r.status for p in report.parts for r in p.code] == ["ok", "error"]
    split = data_of(next(b for b in bodies if is_decompose(b)))
    judged = data_of(next(b for b in bodies if not is_decompose(b)))
    learner_side = str(split) + str(judged["claims"])
    for tutor_words in ("retain_grad", "Only floating point tensors"):
        assert tutor_words not in learner_side
    first, second = split["parts"]
    assert first["paragraphs"] == [
        [3, "So, autograd. Here is the step from memory:"],
        [13, "The .grad should come out as 2, 4, 6 because the derivative of x squared is "
             "2x. To keep an intermediate gradient I forgot the name of the method"]]
    assert first["code"] == [{"lines": [6, 10], "code": "import torch\nx = torch.tensor(["
                              "1., 2., 3.], requires_grad=True)\ny = (x ** 2).sum()\n"
                              "y.backward()\nprint(x.grad)", "run": "ran without error"}]
    (run,) = second["code"]
    assert run["lines"] == [21, 22]
    assert run["run"].startswith("failed when run at line 22: RuntimeError: Only Tensors of "
                                 "floating point and complex dtype can require gradients")
    assert report.set_aside == 2


def test_each_part_goes_to_the_model_under_its_own_topic(tmp_path):
    """Topics come from ankigen.topics (one definition for cards and grader): no part is
    sent under another part's heading or the session's `# Goal`."""
    session = LABELLED / "cnn"
    sources = load_sources([session / "sources"])
    with FakeOpenAI(Tutor()) as srv:
        endpoint = Endpoint(srv.base_url, "scripted", "k", timeout_s=5, budget_s=30)
        grade_recall(load_recall(session / "recall.md"), sources,
                     GradeOptions(endpoint=endpoint, run_code=False,
                                  cache_path=tmp_path / "c.db"))
        bodies = list(srv.requests)
    want = ["Convolutional neural networks", "Convolutional layer itself",
            "A tiny CNN for 28x28 grayscale digits", "Pooling",
            "How a typical CNN is put together", "Famous architectures"]
    for body in bodies:
        assert [p["topic"] for p in data_of(body)["parts"]] == want
