"""The bank: short, self-contained PyTorch checks that assert what they demonstrate.

Each check names what makes it fit a gap, as regexes: `cues` are names only this topic
uses (`zero_grad`, `TensorDataset`, `nn.Parameter`), `topics` are words that also turn
up in passing ("dropout", "learning rate", "padding"). Matching prefers precision: a
wrong check on a card is worse than none. See `match_gap`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import Gap, GapKind


@dataclass(frozen=True)
class BankCheck:
    id: str
    title: str
    demonstrates: str
    cues: tuple[str, ...]  # one of these in what was missed is enough
    code: str
    topics: tuple[str, ...] = ()  # these need the question (or a second cue) to agree

    @property
    def triggers(self) -> tuple[str, ...]:
        return self.cues + self.topics


def _c(id: str, title: str, demonstrates: str, cues: tuple[str, ...], code: str,
       topics: tuple[str, ...] = ()) -> BankCheck:
    return BankCheck(id, title, demonstrates, cues, code.strip() + "\n", topics)


BANK: tuple[BankCheck, ...] = (
    _c("tensor-basics", "A tensor is an n-dimensional array", "shape, ndim and element access",
       (r"\btensor\.shape\b", r"\.ndim\b"), """
import torch
t = torch.tensor([[1, 2, 3], [4, 5, 6]])
print(t.shape, t.ndim)
assert t.shape == (2, 3) and t.ndim == 2 and t[1, 2].item() == 6
""", (r"\bmulti-?dimensional array\b", r"\bn-dimensional array\b")),
    _c("default-float32", "PyTorch floats default to float32", "torch.tensor of floats is float32, numpy's default is float64",
       (r"\bfloat32\b", r"\bfloat64\b", r"default (?:float|dtype)"), """
import numpy as np
import torch
t = torch.tensor([1.0, 2.0])
a = np.array([1.0, 2.0])
print(t.dtype, a.dtype, torch.from_numpy(a).dtype)
assert t.dtype == torch.float32 and a.dtype == np.float64
assert torch.from_numpy(a).dtype == torch.float64  # from_numpy keeps numpy's dtype
""", (r"\b32[- ]?bits?\b",)),
    _c("dtype-promotion", "Mixed types promote to the most general", "int + float → float, float + complex → complex",
       (r"type promotion", r"most general (?:data ?)?type"), """
import torch
print(torch.tensor([1, 2.5]).dtype, (torch.tensor([1]) + 0.5).dtype, torch.tensor([1.0, 2j]).dtype)
assert torch.tensor([1, 2.5]).dtype == torch.float32
assert (torch.tensor([1]) + 0.5).dtype == torch.float32
assert torch.tensor([1.0, 2j]).dtype == torch.complex64
assert torch.tensor([True, 2]).dtype == torch.int64
""", (r"\bpromot", r"mixed (?:data )?types")),
    _c("no-strings", "Tensors hold numbers, not strings", "torch.tensor of str raises",
       (), """
import torch
try:
    torch.tensor(["a", "b"])
except (TypeError, ValueError) as exc:
    print(type(exc).__name__, exc)
else:
    raise AssertionError("a tensor of strings was accepted")
""", (r"strings?\b.*\btensor|tensor\b.*\bstrings?\b",)),
    _c("numpy-bridge", "from_numpy shares memory", "changing the array changes the tensor",
       (r"from_numpy",), """
import numpy as np
import torch
a = np.zeros(3)
t = torch.from_numpy(a)
a[0] = 7
print(t)
assert t[0].item() == 7
""", (r"shares? (?:the )?memory",)),
    _c("requires-grad", "requires_grad turns on tracking", "operations on it build a graph; .grad is filled by backward",
       (r"requires_grad",), """
import torch
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
y = (x * 2).sum()
print(y.grad_fn)
y.backward()
print(x.grad)
assert y.grad_fn is not None and torch.equal(x.grad, torch.tensor([2.0, 2.0, 2.0]))
""", (r"\.backward\(\)", r"\.grad\b")),
    _c("backward-not-backwards", "It is backward(), not backwards()", "a Tensor has no attribute backwards",
       (r"\bbackwards\(\)",), """
import torch
w = torch.tensor(2.0, requires_grad=True)
loss = (w * 3) ** 2
try:
    loss.backwards()
except AttributeError as exc:
    print("AttributeError:", exc)
loss.backward()
print(w.grad)
assert not hasattr(loss, "backwards") and w.grad.item() == 36.0
"""),
    _c("grad-accumulates", "Gradients accumulate across backward calls", "a second backward adds to .grad",
       (r"\bgrad\w*\W+(?:\w+\W+){0,4}accumulat", r"\baccumulat\w*\W+(?:\w+\W+){0,4}grad"), """
import torch
x = torch.tensor(3.0, requires_grad=True)
(x ** 2).backward()
first = x.grad.item()
(x ** 2).backward()
print(first, x.grad.item())
assert first == 6.0 and x.grad.item() == 12.0
""", (r"\baccumulat", r"\bcumulative\b")),
    _c("zero-grad", "zero_grad clears accumulated gradients", "optimizer.zero_grad() resets .grad each step",
       (r"zero_grad", r"\b(?:drop|clear|empty|reset|zero)\w* (?:the |its |their |all )?grad(?:ient)?s?\b"), """
import torch
model = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model(torch.ones(1, 2)).sum().backward()
assert model.weight.grad is not None
opt.zero_grad()
print(model.weight.grad)
assert model.weight.grad is None or torch.all(model.weight.grad == 0)
"""),
    _c("inplace-leaf", "In-place ops on a leaf that requires grad fail", "w += 1 raises outside torch.no_grad()",
       (r"\bin[- ]place (?:op|operation|change|modif|update|add)", r"\bleaf (?:tensor|variable)"), """
import torch
w = torch.ones(2, requires_grad=True)
try:
    w += 1
except RuntimeError as exc:
    print("RuntimeError:", exc)
else:
    raise AssertionError("in-place update of a leaf was allowed")
with torch.no_grad():
    w += 1
print(w)
assert torch.equal(w.detach(), torch.tensor([2.0, 2.0]))
""", (r"\bin[- ]place\b", r"\b[xw] ?\+= ?1\b")),
    _c("no-grad", "torch.no_grad() builds no graph", "results inside it have requires_grad False",
       (r"no_grad",), """
import torch
x = torch.ones(3, requires_grad=True)
with torch.no_grad():
    y = x * 2
z = x * 2
print(y.requires_grad, z.requires_grad)
assert not y.requires_grad and z.requires_grad
"""),
    _c("detach", "detach() cuts a tensor from the graph", "a detached tensor shares its data but has no grad_fn and needs no grad",
       (r"\bdetach\b",), """
import torch
x = torch.ones(2, requires_grad=True)
y = x.detach()
print(y.requires_grad, y.grad_fn, y.data_ptr() == x.data_ptr())
assert not y.requires_grad and y.grad_fn is None and y.data_ptr() == x.data_ptr()
"""),
    _c("dynamic-graph", "The graph is built anew on every forward pass", "Python control flow decides the graph",
       (r"dynamic (?:computation(?:al)? )?graph", r"define[- ]by[- ]run"), """
import torch
def f(x):
    return x * 2 if x.sum() > 0 else x * -3
a = torch.tensor([1.0], requires_grad=True)
b = torch.tensor([-1.0], requires_grad=True)
f(a).backward(); f(b).backward()
print(a.grad, b.grad)
assert a.grad.item() == 2.0 and b.grad.item() == -3.0
""", (r"(?:loops?|conditionals?|control flow)\b.*\bgraph|graph\b.*\b(?:loops?|conditionals?|control flow)",)),
    _c("parameter", "nn.Parameter registers a tensor as a parameter", "Module.parameters() lists Parameters, not plain tensors",
       (r"(?-i:nn\.Parameter)", r"register_parameter"), """
import torch
from torch import nn
class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.cache = torch.zeros(3)  # a plain tensor: not a parameter
m = Scale()
names = [n for n, _ in m.named_parameters()]
print(names, isinstance(m.w, torch.Tensor))
assert names == ["w"] and isinstance(m.w, torch.Tensor) and m.w.requires_grad
"""),
    _c("module-forward", "Calling a module runs forward()", "model(x) runs forward() through __call__, which also runs hooks; m.forward(x) skips them",
       (r"__call__", r"forward hook", r"\bcalls? (?:its |the )?forward\b"), """
import torch
from torch import nn
class Double(nn.Module):
    def forward(self, x):
        return 2 * x
m = Double()
seen = []
m.register_forward_hook(lambda module, args, out: seen.append(out))
print(m(torch.tensor([1.0, 2.0])), len(seen))
assert torch.equal(m(torch.tensor([1.0])), m.forward(torch.tensor([1.0])))
assert len(seen) == 2  # the two calls through m(...) ran the hook; m.forward(...) did not
""", (r"nn\.Module", r"\bforward\(\)")),
    _c("linear-shapes", "nn.Linear stores weight as (out, in)", "y = x @ W.T + b",
       (r"\bweight\.shape\b", r"\bout_features\b"), """
import torch
from torch import nn
lin = nn.Linear(3, 2)
x = torch.randn(4, 3)
print(lin.weight.shape, lin.bias.shape, lin(x).shape)
assert lin.weight.shape == (2, 3) and torch.allclose(lin(x), x @ lin.weight.T + lin.bias)
""", (r"nn\.Linear",)),
    _c("sequential", "nn.Sequential chains modules", "layers run in order; parameters are collected",
       (r"nn\.Sequential",), """
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
x = torch.randn(5, 4)
print(model(x).shape, sum(p.numel() for p in model.parameters()))
assert model(x).shape == (5, 1) and torch.equal(model(x), model[2](model[1](model[0](x))))
assert sum(p.numel() for p in model.parameters()) == 4 * 8 + 8 + 8 + 1
""", (r"\bSequential\b",)),
    _c("to-device", "Tensors and models move with .to(device)", ".to() returns a tensor on the device; a model moves in place",
       (r"\.to\(\)", r"\.to\(device\)", r"\bto\(device", r"\.cuda\(\)"), """
import torch
device = "cuda" if torch.cuda.is_available() else "cpu"
model = torch.nn.Linear(2, 1)
assert model.to(device) is model  # a module moves in place and returns itself
cpu = torch.ones(3, 2)
x = cpu.to(device)  # a tensor is copied (when the device differs): keep what .to() returns
print(device, next(model.parameters()).device, model(x).device)
assert model(x).device.type == device and x.device.type == device and cpu.device.type == "cpu"
"""),
    _c("tensordataset", "TensorDataset pairs tensors by index", "len and indexing give (x, y) rows",
       (r"TensorDataset",), """
import torch
from torch.utils.data import TensorDataset
X, y = torch.arange(10.).reshape(5, 2), torch.arange(5)
ds = TensorDataset(X, y)
print(len(ds), ds[2])
assert len(ds) == 5 and torch.equal(ds[2][0], X[2]) and ds[2][1].item() == 2
"""),
    _c("dataloader", "DataLoader batches a Dataset", "batch_size rows per batch, the last one smaller",
       (r"DataLoader", r"\bbatch_size\b"), """
import torch
from torch.utils.data import DataLoader, TensorDataset
ds = TensorDataset(torch.arange(10.).unsqueeze(1), torch.arange(10))
sizes = [xb.shape[0] for xb, yb in DataLoader(ds, batch_size=4, shuffle=True)]
print(sizes)
assert sizes == [4, 4, 2]
""", (r"\bdata ?loaders?\b", r"\bmini[- ]?batch")),
    _c("custom-dataset", "A Dataset needs __len__ and __getitem__", "DataLoader works with any class that has them",
       (r"__getitem__", r"__len__"), """
import torch
from torch.utils.data import DataLoader, Dataset
class Squares(Dataset):
    def __len__(self):
        return 6
    def __getitem__(self, i):
        return torch.tensor(float(i)), torch.tensor(float(i * i))
batches = list(DataLoader(Squares(), batch_size=3))
print(batches[1])
assert len(batches) == 2 and batches[1][1].tolist() == [9.0, 16.0, 25.0]
""", (r"\bDataset\b",)),
    _c("mse-loss", "MSELoss is the mean of squared errors", "nn.MSELoss() equals ((a-b)**2).mean()",
       (r"MSE ?Loss", r"mse_loss", r"mean squared error"), """
import torch
a, b = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 0.0])
loss = torch.nn.MSELoss()(a, b)
print(loss)
assert torch.isclose(loss, ((a - b) ** 2).mean()) and abs(loss.item() - 20 / 3) < 1e-5
""", (r"\bMSE\b",)),
    _c("l1-vs-rmse", "mse_loss is not RMSE", "F.mse_loss has no square root; RMSE = sqrt(MSE)",
       (r"\bRMSE\b", r"l1_loss", r"root mean squared? error"), """
import torch
import torch.nn.functional as F
a, b = torch.zeros(2), torch.tensor([3.0, 4.0])
print(F.l1_loss(a, b), F.mse_loss(a, b), F.mse_loss(a, b).sqrt())
assert F.l1_loss(a, b).item() == 3.5 and F.mse_loss(a, b).item() == 12.5
assert torch.isclose(F.mse_loss(a, b).sqrt(), torch.tensor(12.5).sqrt())
""", (r"\bL1\b",)),
    _c("cross-entropy-logits", "CrossEntropyLoss takes raw logits", "it applies log-softmax itself; don't softmax first",
       (r"CrossEntropyLoss", r"\bcross_entropy\b"), """
import torch
import torch.nn.functional as F
logits = torch.tensor([[2.0, 0.5, -1.0]])
target = torch.tensor([0])
ce = torch.nn.CrossEntropyLoss()(logits, target)
manual = -F.log_softmax(logits, dim=1)[0, 0]
print(ce, manual)
assert torch.isclose(ce, manual)
assert not torch.isclose(torch.nn.CrossEntropyLoss()(logits.softmax(1), target), ce)
""", (r"\bcross[- ]?entropy\b", r"\blogits?\b")),
    _c("bce-with-logits", "BCEWithLogitsLoss = sigmoid + BCELoss, stably", "the two agree on moderate logits",
       (r"BCEWithLogits", r"\bBCE ?Loss\b", r"binary_cross_entropy"), """
import torch
z, y = torch.tensor([0.3, -1.2]), torch.tensor([1.0, 0.0])
a = torch.nn.BCEWithLogitsLoss()(z, y)
b = torch.nn.BCELoss()(torch.sigmoid(z), y)
print(a, b)
assert torch.isclose(a, b)
""", (r"\bBCE\b", r"\bbinary cross[- ]?entropy\b")),
    _c("sgd-step", "optimizer.step() moves parameters against the gradient", "w ← w − lr·grad",
       (r"optimi[sz]er\.step", r"optim\.SGD\b"), """
import torch
w = torch.nn.Parameter(torch.tensor(1.0))
opt = torch.optim.SGD([w], lr=0.1)
(w * 5).backward()
opt.step()
print(w)
assert torch.isclose(w.detach(), torch.tensor(0.5))
""", (r"\bSGD\b", r"\.step\(\)")),
    _c("manual-update", "A manual update runs under no_grad", "w -= lr * w.grad, then zero the grad",
       (r"\bw ?= ?w ?- ?(?:learning_rate|lr)\b", r"-= ?(?:learning_rate|lr)\b", r"manual(?:ly)? update"), """
import torch
w = torch.tensor(1.0, requires_grad=True)
(w ** 2).backward()
with torch.no_grad():
    w -= 0.1 * w.grad
w.grad.zero_()
print(w, w.grad)
assert torch.isclose(w.detach(), torch.tensor(0.8)) and w.grad.item() == 0
"""),
    _c("momentum", "Momentum keeps a running velocity", "the second step is larger than plain SGD's",
       (r"\bmomentum ?=",), """
import torch
def two_steps(momentum):
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.SGD([w], lr=0.1, momentum=momentum)
    for _ in range(2):
        opt.zero_grad(); (w * 1.0).backward(); opt.step()
    return w.item()
print(two_steps(0.0), two_steps(0.9))
assert abs(two_steps(0.0) - 0.8) < 1e-6 and abs(two_steps(0.9) - 0.71) < 1e-6
""", (r"\bmomentum\b",)),
    _c("adam-bias", "Adam's first step has size lr", "bias correction makes early steps ≈ lr whatever the gradient scale",
       (r"bias[- ]correct", r"\bcorrect\w* (?:the |its |their )?bias", r"optim\.Adam\b"), """
import torch
for g in (0.001, 1000.0):
    w = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.Adam([w], lr=0.01)
    (w * g).backward(); opt.step()
    print(f"gradient {g:g}: first step {w.item():.5f}")  # rounded: the same on every CPU
    assert abs(w.item() + 0.01) < 1e-4
""", (r"\bAdam\b",)),
    _c("adamw-decay", "AdamW decouples weight decay", "AdamW shrinks w by lr·wd·w directly; Adam adds wd·w to the gradient, which its scaling turns into a step of ≈ lr",
       (r"AdamW", r"decoupled weight decay"), """
import torch
def after(opt_cls, wd):
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = opt_cls([w], lr=0.1, weight_decay=wd)
    w.grad = torch.tensor(0.0); opt.step()  # no gradient from the loss: decay alone
    return w.item()
print(f"AdamW wd=0.1: {after(torch.optim.AdamW, 0.1):.5f}; Adam wd=0.1: "
      f"{after(torch.optim.Adam, 0.1):.5f}; Adam wd=0.001: {after(torch.optim.Adam, 0.001):.5f}")
assert abs(after(torch.optim.AdamW, 0.1) - (1 - 0.1 * 0.1)) < 1e-6  # decoupled: lr·wd·w
assert abs(after(torch.optim.Adam, 0.1) - 0.9) < 1e-4  # coupled: normalised to ≈ lr
assert abs(after(torch.optim.Adam, 0.001) - 0.9) < 1e-3  # whatever wd is
""", (r"\bweight[ _]decay\b",)),
    _c("lr-too-high", "Too high a learning rate diverges", "on f(w)=w², lr>1 grows |w|, a small lr shrinks it",
       (r"learning rate (?:is |was )?too (?:high|large|big)", r"too (?:high|large|big) (?:a )?learning rate",
        r"\bdiverg(?:e|es|ed|ing)\b", r"\bovershoot"), """
import torch
def run(lr):
    w = torch.nn.Parameter(torch.tensor(1.0))
    opt = torch.optim.SGD([w], lr=lr)
    for _ in range(10):
        opt.zero_grad(); (w ** 2).backward(); opt.step()
    return abs(w.item())
print(run(0.1), run(1.1))
assert run(0.1) < 0.2 and run(1.1) > 1.0
"""),
    _c("lr-schedule", "A scheduler changes the learning rate as you train", "StepLR multiplies lr by gamma every step_size epochs",
       (r"learning[- ]rate schedul", r"\blr[_ ]schedul", r"StepLR", r"one-?cycle", r"scheduler\.step"), """
import torch
w = torch.nn.Parameter(torch.tensor(1.0))
opt = torch.optim.SGD([w], lr=1.0)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
lrs = []
for _ in range(5):
    lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
print(lrs)
assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
""", (r"\bschedul", r"\bwarms? ?up\b")),
    _c("dropout-train-eval", "Dropout is active in train() and off in eval()", "eval() makes the module deterministic",
       (r"model\.eval", r"model\.train", r"\.eval\(\)", r"nn\.Dropout"), """
import torch
torch.manual_seed(0)
drop = torch.nn.Dropout(p=0.5)
x = torch.ones(1000)
drop.train(); y = drop(x)
drop.eval(); z = drop(x)
print((y == 0).float().mean(), torch.equal(z, x))
assert 0.4 < (y == 0).float().mean() < 0.6 and torch.equal(z, x)
""", (r"\bdropout\b",)),
    _c("batchnorm-train-eval", "BatchNorm uses batch stats in train(), running stats in eval()", "running_mean updates only in train mode",
       (r"BatchNorm\dd", r"running_(?:mean|var)"), """
import torch
bn = torch.nn.BatchNorm1d(1)
x = torch.tensor([[1.0], [3.0]])
bn.train(); out = bn(x)
before = bn.running_mean.clone()
bn.eval(); bn(x)
print(out.flatten(), bn.running_mean)
assert torch.allclose(out.flatten(), torch.tensor([-1.0, 1.0]), atol=1e-3)  # batch stats
assert torch.allclose(before, torch.tensor([0.2]))  # train() moved it 10% towards mean 2
assert torch.equal(before, bn.running_mean)  # eval() did not
""", (r"\bbatch ?norm",)),
    _c("rnn-shapes", "nn.RNN returns (output, h_n)", "output (batch, seq, hidden) with batch_first; h_n (layers, batch, hidden)",
       (r"nn\.RNN\b", r"\bh_n\b"), """
import torch
rnn = torch.nn.RNN(input_size=3, hidden_size=5, num_layers=2, batch_first=True)
out, h = rnn(torch.randn(4, 7, 3))
print(out.shape, h.shape)
assert out.shape == (4, 7, 5) and h.shape == (2, 4, 5)
assert torch.allclose(out[:, -1], h[-1])
""", (r"\bRNN\b", r"\bhidden state\b")),
    _c("lstm-state", "nn.LSTM carries a hidden and a cell state", "it returns (output, (h_n, c_n))",
       (r"nn\.LSTM", r"\bcell state\b", r"\bc_n\b"), """
import torch
lstm = torch.nn.LSTM(input_size=3, hidden_size=4, batch_first=True)
out, (h, c) = lstm(torch.randn(2, 6, 3))
print(out.shape, h.shape, c.shape)
assert out.shape == (2, 6, 4) and h.shape == c.shape == (1, 2, 4)
""", (r"\bLSTM\b",)),
    _c("init-weights", "Weights can be (re)initialised in place", "nn.init functions fill a parameter under no_grad",
       (r"nn\.init", r"\b(?:xavier|glorot|kaiming)\b", r"weight initiali[sz]ation"), """
import torch
lin = torch.nn.Linear(10, 10)
torch.nn.init.zeros_(lin.bias)
torch.nn.init.xavier_uniform_(lin.weight)
bound = (6 / (10 + 10)) ** 0.5
print(lin.bias.abs().max(), lin.weight.abs().max() <= bound)
assert torch.all(lin.bias == 0) and lin.weight.abs().max() <= bound
""", (r"\binitiali[sz]", r"\brandom weights\b")),
    _c("manual-seed", "manual_seed makes randomness repeatable", "the same seed gives the same numbers",
       (r"manual_seed",), """
import torch
torch.manual_seed(42); a = torch.rand(3)
torch.manual_seed(42); b = torch.rand(3)
print(a)
assert torch.equal(a, b)
""", (r"\bseed\b", r"\breproducib")),
    _c("broadcasting", "Broadcasting stretches size-1 dimensions", "(3,1) + (1,4) gives (3,4); the stretch copies nothing (stride 0)",
       (r"\bbroadcast",), """
import torch
a, b = torch.arange(3.).reshape(3, 1), torch.arange(4.).reshape(1, 4)
print((a + b).shape, torch.tensor([1, 2, 3]) + torch.tensor(1))
assert (a + b).shape == (3, 4) and torch.equal(torch.tensor([1, 2, 3]) + 1, torch.tensor([2, 3, 4]))
stretched = a.expand(3, 4)
assert stretched.stride() == (1, 0) and stretched.data_ptr() == a.data_ptr()
"""),
    _c("matmul", "@ is matrix multiplication", "X @ w with shapes (n,d) @ (d,1) gives (n,1)",
       (r"matrix multiplication", r"\bX ?@ ?w\b", r"\bmatmul\b"), """
import torch
X, w = torch.randn(5, 3), torch.randn(3, 1)
print((X @ w).shape)
assert (X @ w).shape == (5, 1) and torch.allclose(X @ w, torch.matmul(X, w))
"""),
    _c("relu-clip", "ReLU is max(x, 0)", "torch.relu equals clamp(min=0) / torch.clip(x, 0)",
       (r"max\(x, ?0\)", r"torch\.relu", r"nn\.ReLU", r"clamp\(min ?= ?0"), """
import torch
x = torch.tensor([-2.0, 0.0, 3.0])
print(torch.relu(x), torch.clip(x, min=0))
assert torch.equal(torch.relu(x), torch.clip(x, min=0)) and torch.equal(torch.relu(x), torch.tensor([0.0, 0.0, 3.0]))
""", (r"\bReLU\b", r"rectified linear")),
    _c("flatten", "nn.Flatten keeps the batch dimension", "(N, C, H, W) → (N, C·H·W)",
       (r"nn\.Flatten", r"\.flatten\("), """
import torch
x = torch.randn(8, 3, 4, 4)
print(torch.nn.Flatten()(x).shape)
assert torch.nn.Flatten()(x).shape == (8, 48)
""", (r"\bflatten",)),
    _c("conv-output-size", "A conv layer's output size is (n + 2p − k)/s + 1", "padding keeps size, stride divides it",
       (r"\(n ?\+ ?2p ?[-−] ?k\)", r"output (?:size|shape) of (?:a |the )?conv"), """
import torch
x = torch.randn(1, 3, 32, 32)
same = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)(x)
strided = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, stride=2)(x)
print(same.shape, strided.shape)
assert same.shape[-1] == (32 + 2 - 3) // 1 + 1 == 32 and strided.shape[-1] == (32 + 2 - 3) // 2 + 1 == 16
""", (r"\bpadding\b", r"\bstride\b", r"\boutput size\b", r"Conv2d")),
    _c("pooling-no-params", "Max pooling has no trainable parameters", "it takes the max over each window",
       (r"\bmax[- ]?pool", r"MaxPool"), """
import torch
pool = torch.nn.MaxPool2d(2)
x = torch.arange(16.).reshape(1, 1, 4, 4)
print(pool(x), list(pool.parameters()))
assert list(pool.parameters()) == [] and torch.equal(pool(x).flatten(), torch.tensor([5.0, 7.0, 13.0, 15.0]))
""", (r"\bpool(?:ing)?\b", r"\bpooling layers?\b")),
    _c("state-dict", "state_dict holds parameters and buffers", "load_state_dict restores them into a fresh model; BatchNorm's running stats are buffers in it",
       (r"state_dict", r"torch\.save"), """
import io
import torch
a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
buf = io.BytesIO(); torch.save(a.state_dict(), buf); buf.seek(0)
b.load_state_dict(torch.load(buf))
print(sorted(a.state_dict()))
assert torch.equal(a.weight, b.weight) and sorted(a.state_dict()) == ["bias", "weight"]
assert "running_mean" in torch.nn.BatchNorm1d(2).state_dict()  # a buffer, not a parameter
""", (r"\bsave (?:the )?model\b",)),
    _c("item-tolist", ".item() gives a Python number", "one-element tensors convert with .item(); others with .tolist()",
       (r"\.item\(\)", r"\.tolist\(\)"), """
import torch
t = torch.tensor([1.5])
print(type(t.item()), torch.tensor([[1, 2]]).tolist())
assert isinstance(t.item(), float) and torch.tensor([[1, 2]]).tolist() == [[1, 2]]
"""),
)


def all_checks() -> tuple[BankCheck, ...]:
    return BANK


_CUES = {c.id: tuple(re.compile(t, re.I) for t in c.cues) for c in BANK}
_TOPICS = {c.id: tuple(re.compile(t, re.I) for t in c.topics) for c in BANK}
SHORT = 4  # words: a cloze term this short is about the topic it mentions


def match_gap(gap: Gap) -> tuple[BankCheck | None, str]:
    """The best-fitting check for a gap and why, or None and why not.

    "What was missed" is the cloze term when there is one, else the answer and the wrong
    code line; "the question" is the prompt and the learner's own words. A check fits when

    - what was missed names one of its cues;
    - or mentions one of its topics, and a *different* cue or topic of it appears in what
      was missed or the question (or the missed cloze term is at most SHORT words);
    - or, for a gap with nothing missed on record (no term, answer or code) that is not a
      "… what else?" list, the prompt itself names one of its cues and another of its
      cues or topics. The learner's own words alone never pick a check: they describe
      what was remembered, not what was missed.

    Among fits, more evidence wins: a cue in the wrong code line 13, elsewhere in what was
    missed 3, a topic there 2, one in the question 1; ties go to the earlier check.
    """
    missed = gap.term or " ".join(x for x in (gap.answer, gap.code) if x)
    question = " ".join(x for x in (gap.prompt, gap.context) if x)
    short = bool(gap.term) and len(missed.split()) <= SHORT
    code = "" if gap.term else gap.code or ""
    nothing_missed = not missed.strip()
    listing = gap.kind is GapKind.INLINE_MARK
    best: tuple[int, int, BankCheck, str] | None = None
    for rank, check in enumerate(BANK):
        cues, topics = _CUES[check.id], _TOPICS[check.id]
        cue_m, topic_m = _hits(cues, missed), _hits(topics, missed)
        in_q = _hits(cues + topics, question)
        if cue_m:
            why = f"what was missed names {cue_m[0][2]!r}"
        elif topic_m and (other := _apart(topic_m[0], topic_m[1:])):
            why = f"what was missed mentions {topic_m[0][2]!r} and {other!r}"
        elif topic_m and (other := next((text for q, _, text in in_q
                                         if q not in {t[0] for t in topic_m}), None)):
            why = f"what was missed mentions {topic_m[0][2]!r}, and the question {other!r}"
        elif topic_m and short:
            why = f"the missed term mentions {topic_m[0][2]!r}"
        elif nothing_missed and not listing and gap.prompt and \
                (named := _hits(cues, gap.prompt)) and \
                (other := _apart(named[0], _hits(cues + topics, gap.prompt))):
            why = f"the question names {named[0][2]!r} and {other!r} (nothing missed on record)"
        else:
            continue
        cue_code = _hits(cues, code)  # the wrong line itself
        score = 3 * len(cue_m) + 10 * len(cue_code) + 2 * len(topic_m) + len(in_q)
        if best is None or score > best[0]:
            best = (score, -rank, check, why)
    if best is None:
        return None, "no check fits well enough (precision over recall)"
    return best[2], best[3]


Hit = tuple[str, tuple[int, int], str]  # a pattern, where it matched, and what


def _hits(patterns: tuple[re.Pattern[str], ...], text: str) -> list[Hit]:
    if not text:
        return []
    return [(p.pattern, m.span(), _word(text, *m.span()))
            for p in patterns if (m := p.search(text))]


def _word(text: str, a: int, b: int) -> str:
    """The match widened to whole words ("in-place op" → "in-place operations")."""
    while a > 0 and text[a - 1].isalnum() and text[a].isalnum():
        a -= 1
    while b < len(text) and text[b].isalnum() and text[b - 1].isalnum():
        b += 1
    return text[a:b]


def _apart(first: Hit, others: list[Hit]) -> str | None:
    """Another pattern matched elsewhere in the text: two pieces of evidence, not one
    phrase that two patterns both match ("in-place update")."""
    a, b = first[1]
    for pattern, (c, d), text in others:
        if pattern != first[0] and (d <= a or c >= b):
            return text
    return None
