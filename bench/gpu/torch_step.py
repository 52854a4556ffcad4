#!/usr/bin/env python3
"""torch_step.py - PyTorch doing the gradient step bench_cuda.c times, for comparison.

The same step as libdlsched's CUDA backend: uniform sampling of B indices
from a device ring of 100000 transitions, online forward on [s; s'] (2B rows),
target forward on s', double-DQN target over allowed actions, Huber loss
(delta 1, mean over the batch), backward, global-norm clip at 10, Adam
(lr 1e-4), hard target copy every 1000 steps. Timed eager, and as one CUDA
graph per step (torch.cuda.graph, Adam capturable) when that works.

One JSON line per figure on stdout; when torch or a GPU is missing, one line
saying so. Usage: torch_step.py [min_seconds]
"""
import json
import sys
import time

MIN_S = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
CONFIGS = [
    ("16-256-256-8", 16, (256, 256), 8, 64),
    ("16-256-256-8", 16, (256, 256), 8, 256),
    ("16-256-256-8", 16, (256, 256), 8, 1024),
    ("64-1024-1024-16", 64, (1024, 1024), 16, 4096),
]
CAP = 100000


def line(**kw):
    kw.setdefault("bench", "torch_step")
    print(json.dumps(kw), flush=True)


try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means "not available"
    line(available=False, reason="torch is not importable: %s" % e)
    sys.exit(0)
if not torch.cuda.is_available():
    line(available=False, reason="torch %s sees no CUDA device" % torch.__version__)
    sys.exit(0)

torch.backends.cuda.matmul.allow_tf32 = False  # FP32, as the library's default
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")


def mlp(nf, hidden, na):
    layers, w = [], nf
    for h in hidden:
        layers += [torch.nn.Linear(w, h), torch.nn.ReLU()]
        w = h
    layers.append(torch.nn.Linear(w, na))
    return torch.nn.Sequential(*layers).to(dev)


def make(nf, hidden, na, batch, capturable):
    torch.manual_seed(0)
    net, tgt = mlp(nf, hidden, na), mlp(nf, hidden, na)
    tgt.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, capturable=capturable)
    ring = dict(
        s=torch.rand(CAP, nf, device=dev),
        s2=torch.rand(CAP, nf, device=dev),
        a=torch.randint(0, na, (CAP,), device=dev),
        r=torch.rand(CAP, device=dev),
        d=torch.where(torch.rand(CAP, device=dev) < 0.1, 0.0, 0.99).to(dev),
        m=torch.ones(CAP, na, dtype=torch.bool, device=dev),
    )

    def step():
        idx = torch.randint(0, CAP, (batch,), device=dev)
        s, s2 = ring["s"][idx], ring["s2"][idx]
        a, r, d, m = ring["a"][idx], ring["r"][idx], ring["d"][idx], ring["m"][idx]
        q_all = net(torch.cat([s, s2]))
        q, q2_on = q_all[:batch], q_all[batch:].detach()
        with torch.no_grad():
            a_star = q2_on.masked_fill(~m, float("-inf")).argmax(1, keepdim=True)
            y = r + d * tgt(s2).gather(1, a_star).squeeze(1)
        loss = F.huber_loss(q.gather(1, a.unsqueeze(1)).squeeze(1), y, delta=1.0)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0, foreach=True)
        opt.step()
        return loss

    def target_copy():
        with torch.no_grad():
            torch._foreach_copy_(list(tgt.parameters()), list(net.parameters()))

    return step, target_copy


def timed(run_steps):
    steps = 50
    while True:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_steps(steps)
        torch.cuda.synchronize()
        sec = time.perf_counter() - t0
        if sec >= MIN_S:
            return steps / sec
        steps *= 2


def eager(cfg):
    name, nf, hidden, na, batch = cfg
    step, target_copy = make(nf, hidden, na, batch, capturable=False)
    count = [0]

    def run(n):
        for _ in range(n):
            step()
            count[0] += 1
            if count[0] % 1000 == 0:
                target_copy()

    run(20)
    return timed(run)


def graphed(cfg):
    name, nf, hidden, na, batch = cfg
    step, target_copy = make(nf, hidden, na, batch, capturable=True)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up on a side stream, as torch.cuda.graph asks
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        step()
    count = [0]

    def run(n):
        for _ in range(n):
            g.replay()
            count[0] += 1
            if count[0] % 1000 == 0:
                target_copy()

    run(20)
    return timed(run)


props = torch.cuda.get_device_properties(0)
device = "%s (%d SMs, cc %d.%d)" % (props.name, props.multi_processor_count, props.major, props.minor)
date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
line(available=True, torch=torch.__version__, cuda=torch.version.cuda, device=device, date=date)
for cfg in CONFIGS:
    for variant, fn in (("eager", eager), ("cuda_graph", graphed)):
        try:
            sps = fn(cfg)
            line(net=cfg[0], batch=cfg[4], variant=variant, steps_per_s=round(sps, 1),
                 us_per_step=round(1e6 / sps, 2), device=device, date=date)
        except Exception as e:  # noqa: BLE001 - report and go on
            line(net=cfg[0], batch=cfg[4], variant=variant, steps_per_s=None,
                 error="%s: %s" % (type(e).__name__, str(e)[:300]))
