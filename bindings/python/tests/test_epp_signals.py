"""dlsched.epp discovery, signals and the learned picker: file reload,
metric names per model server (the GIE model server protocol table is the
oracle), the prefix index, the slot table, the agent's mask."""
from __future__ import annotations

import os
import random
import threading
import time

import pytest

pytest.importorskip("yaml")

from dlsched.epp.discovery import DiscoveryError, Endpoint, FileDiscovery, load_endpoints  # noqa: E402
from dlsched.epp.signals import (PrefixIndex, Scraper, ServerMetrics, SlotTable,  # noqa: E402
                                 parse_metrics, prompt_blocks)

VLLM = """# HELP vllm:num_requests_waiting x
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 3.0
vllm:num_requests_waiting{model_name="b"} 2.0
vllm:num_requests_running{model_name="a"} 7.0
vllm:kv_cache_usage_perc{model_name="a"} 0.25
vllm:kv_cache_usage_perc{model_name="b"} 0.5
vllm:num_requests_waiting_by_reason{reason="x"} 99
"""
VLLM_OLD = "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\nvllm:gpu_cache_usage_perc 0.9\n"
SGLANG = ('sglang:num_queue_reqs{model_name="m"} 4\nsglang:num_running_reqs{model_name="m"} 8\n'
          'sglang:token_usage{model_name="m"} 0.3\n')
TRTLLM = "trtllm_num_requests_waiting 5\ntrtllm_num_requests_running 6\ntrtllm_kv_cache_utilization 0.7\n"
TRITON = ('nv_trt_llm_request_metrics{model="e",request_type="waiting",version="1"} 2\n'
          'nv_trt_llm_request_metrics{model="e",request_type="scheduled",version="1"} 3\n'
          'nv_trt_llm_request_metrics{model="e",request_type="context",version="1"} 50\n'
          'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="e"} 0.125\n'
          'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="e"} 4096\n')


@pytest.mark.parametrize("text,want", [
    (VLLM, ServerMetrics(5, 7, 0.5, "vllm")),        # waiting summed, usage the max
    (VLLM_OLD, ServerMetrics(1, 2, 0.9, "vllm")),
    (SGLANG, ServerMetrics(4, 8, 0.3, "sglang")),
    (TRTLLM, ServerMetrics(5, 6, 0.7, "trtllm")),
    (TRITON, ServerMetrics(2, 3, 0.125, "triton")),
])
def test_parse_metrics(text, want):
    assert parse_metrics(text) == want


def test_parse_metrics_unknown_and_nan():
    assert parse_metrics("process_cpu_seconds_total 3\n") is None
    assert parse_metrics("vllm:num_requests_waiting NaN\nvllm:num_requests_running 1\n") == \
        ServerMetrics(0, 1, 0, "vllm")


def test_parse_metrics_large_page():
    # a vLLM-sized page (~170 KB of histograms for two models) with the three
    # gauges at random places among them, look-alike names (suffixes, a
    # comment, a label value), CRLF line ends, and a timestamp after a value:
    # only the exact sample lines count (waiting 3 + 4, running 5 + 6, the
    # larger usage 0.75)
    import random
    rng = random.Random(7)
    lines = []
    for fam in range(40):
        lines.append(f"# HELP vllm:hist_{fam} a histogram")
        for model in ("a", "b"):
            for b in range(30):
                lines.append(f'vllm:hist_{fam}_bucket{{le="{b / 10}",model_name="{model}"}} {rng.randint(0, 999)}')
    wanted = ['vllm:num_requests_waiting{model_name="a"} 3', 'vllm:num_requests_waiting{model_name="b"} 4 1733580000000',
              'vllm:num_requests_running{model_name="a"} 5', 'vllm:num_requests_running{model_name="b"} 6',
              'vllm:kv_cache_usage_perc{model_name="a"} 0.75', 'vllm:kv_cache_usage_perc{model_name="b"} 0.5',
              "# vllm:num_requests_waiting 1000", 'vllm:num_requests_waiting_total{x="y"} 1000',
              'vllm:iteration_tokens{name="vllm:num_requests_running"} 1000',
              "xvllm:num_requests_running 1000"]
    for w in wanted:
        lines.insert(rng.randrange(len(lines) + 1), w)
    text = "\r\n".join(lines) + "\r\n"
    assert len(text) > 100_000
    assert parse_metrics(text) == ServerMetrics(7, 11, 0.75, "vllm")
    assert parse_metrics(wanted[0]) == ServerMetrics(3, 0, 0, "vllm")  # first line, no newline


def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def test_file_discovery_reloads_on_rename(tmp_path):
    p = tmp_path / "endpoints.yaml"
    write_atomic(p, "endpoints:\n- {name: a, namespace: ns, address: 10.0.0.1, port: 8000,"
                    " labels: {gpu: H100}}\n")
    d = FileDiscovery(str(p), interval=0.02)
    seen = []
    ev = threading.Event()

    def cb(eps):
        seen.append(eps)
        if len(seen) >= 3:
            ev.set()
    d.start(cb)
    assert seen[0] == [Endpoint("a", "ns", "10.0.0.1", 8000)] and seen[0][0].labels == {"gpu": "H100"}
    write_atomic(p, "endpoints:\n- {name: a, namespace: ns, address: 10.0.0.1, port: 8000}\n"
                    "- {name: b, address: 10.0.0.2, port: 8001}\n")
    time.sleep(0.2)
    write_atomic(p, "endpoints: [ {name: broken")  # a bad file keeps the last good list
    time.sleep(0.2)
    write_atomic(p, "endpoints: []\n")
    assert ev.wait(5)
    d.stop()
    assert [e.key for e in seen[1]] == ["ns/a", "default/b"]
    assert seen[1][1].hostport == "10.0.0.2:8001"
    assert seen[2] == [] and len(seen) == 3
    assert d.errors == 1 and "not valid YAML" in d.last_error and str(p) in d.last_error


def test_endpoint_errors_name_the_entry(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("endpoints:\n- {name: a, address: x, port: 0}\n")
    with pytest.raises(DiscoveryError, match=r"endpoints\[0\]: port 0 is outside"):
        load_endpoints(str(p))
    p.write_text("endpoints:\n- {name: a, address: x, port: 1}\n- {name: a, address: y, port: 2}\n")
    with pytest.raises(DiscoveryError, match=r"endpoints\[1\]: duplicate endpoint default/a"):
        load_endpoints(str(p))
    with pytest.raises(DiscoveryError, match="missing.yaml"):
        FileDiscovery(str(tmp_path / "missing.yaml"))
    assert Endpoint("a", "n", "fd00::1", 80).hostport == "[fd00::1]:80"


def test_slot_table_is_stable():
    e = [Endpoint(f"e{i}", "d", f"10.0.0.{i}", 80) for i in range(5)]
    t = SlotTable(4)
    t.update(e[:3])
    assert [x.name if x else None for x in t.slots] == ["e0", "e1", "e2", None]
    assert t.update([e[0], e[2], e[3]]) == [1]          # e1 leaves slot 1
    assert [x.name if x else None for x in t.slots] == ["e0", "e3", "e2", None]
    t.update([e[0], e[2], e[3], e[1]])                  # e1 back: its old slot is taken
    assert t.slots[3].name == "e1"
    t.update([e[0], e[1], e[2], e[3], e[4]])            # beyond the slots
    assert t.overflow == ["d/e4"] and t.slot_of("10.0.0.3:80") == 1
    with pytest.raises(ValueError, match="at least 1"):
        SlotTable(0)


def test_prefix_blocks_and_index():
    a = "x" * 64 + "y" * 64 + "z" * 10     # 2 full blocks
    b = "x" * 64 + "w" * 64
    ba, bb = prompt_blocks(a), prompt_blocks(b)
    assert len(ba) == 2 and ba[0] == bb[0] and ba[1] != bb[1]  # chained: same first block only
    idx = PrefixIndex(capacity=3)
    idx.add(ba, 0)
    idx.add(bb, 1)
    assert idx.match(ba, [0, 1, 2]) == {0: 2, 1: 1, 2: 0}
    idx.add(prompt_blocks("q" * 128), 2)                  # 5 hashes > capacity 3: oldest go
    assert len(idx) == 3
    assert idx.match(ba, [0, 1]) == {0: 0, 1: 0}          # ba[0] was evicted
    idx.forget_slot(2)
    assert len(idx) == 1


def test_prefix_match_counts_as_gie():
    # GIE's matchLongestPrefix, worked by hand: blocks h0..h4 of one prompt;
    # endpoint 0 holds h0, h1, h3; endpoint 1 holds h0, h2 (an LRU evicted
    # the blocks in between); nobody holds h4. Walking h0..h3 (h4: stop),
    # each holder of a block counts it: 0 -> h0, h1, h3 = 3; 1 -> h0, h2 = 2.
    idx = PrefixIndex()
    h = [101, 102, 103, 104, 105]
    idx.add([h[0], h[1], h[3]], 0)
    idx.add([h[0], h[2]], 1)
    assert idx.match(h, [0, 1, 2]) == {0: 3, 1: 2, 2: 0}
    # the walk stops at the first block nobody holds, even if later ones are held
    idx2 = PrefixIndex()
    idx2.add([h[1], h[2]], 0)
    assert idx2.match(h, [0]) == {0: 0}
    # endpoints outside the asked slots still keep the walk going (the
    # scorer's index is over every endpoint, the candidates are a subset)
    idx3 = PrefixIndex()
    idx3.add([h[0], h[1]], 5)
    idx3.add([h[0]], 0)
    idx3.add([h[1]], 0)
    assert idx3.match(h, [0]) == {0: 2}


def test_learned_picker_respects_mask_and_subset(qagent_lib):
    import dlsched
    from dlsched.epp.picker import Picker, default_agent_spec

    class S(Scraper):
        def set_endpoints(self, eps):
            pass
    sc = S()
    agent = dlsched.Agent(default_agent_spec(4).replace("apprentice=2000", "apprentice=0")
                          .replace("epsilon_start=0.05", "epsilon_start=1.0")
                          .replace("epsilon_end=0.01", "epsilon_end=1.0").replace("guard=1", "guard=0"))
    p = Picker(max_endpoints=4, policy="learned", agent=agent, scraper=sc)
    eps = [Endpoint(f"e{i}", "d", f"10.0.0.{i}", 80) for i in range(3)]  # slot 3 empty
    p.set_endpoints(eps)
    for e in eps:
        sc.put(e.key, ServerMetrics(1, 1, 0.1, "vllm"))
    got = set()
    for _ in range(200):  # exploring uniformly: only occupied slots come back
        r = p.pick({}, None, None)
        got.add(r.endpoints[0])
        p.response_headers(r.context, 200)
        assert p.finish(r.context, True) == 1.0
    assert got == {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"}
    for _ in range(50):
        r = p.pick({}, None, ["10.0.0.2:80"])
        assert r.endpoints == ["10.0.0.2:80"]
        p.finish(r.context, False)
    st = agent.stats()
    assert st.observed == 200
    with pytest.raises(ValueError, match="needs 8 and 64"):
        Picker(max_endpoints=8, policy="learned", agent=agent, scraper=sc)
    agent.close()


@pytest.fixture
def qagent_lib():
    from conftest import LIBRARY
    if not LIBRARY:
        pytest.skip("libdlsched not found")
    return LIBRARY


def test_agent_failure_serves_the_incumbent():
    from dlsched.epp.picker import Picker

    class Broken:
        n_actions, n_features = 4, 32

        def act(self, *a, **k):
            raise RuntimeError("act failed")

    class S(Scraper):
        def set_endpoints(self, eps):
            pass
    sc = S()
    p = Picker(max_endpoints=4, policy="learned", agent=Broken(), scraper=sc)
    eps = [Endpoint(f"e{i}", "d", f"10.0.0.{i}", 80) for i in range(2)]
    p.set_endpoints(eps)
    sc.put(eps[0].key, ServerMetrics(9, 0, 0.5, "vllm"))
    sc.put(eps[1].key, ServerMetrics(0, 0, 0.5, "vllm"))
    # e0 had the last cold request (llm-d's no-hit LRU then ranks e1 first as
    # well): the mix picks e1 (queue 0 against 9, LRU 1 against 0)
    p.last_cold[p.slots.slot_of("10.0.0.0:80")] = 1
    r = p.pick({}, None, None)
    assert r.status == 200 and r.endpoints == ["10.0.0.1:80"] and r.context.source == "incumbent"
    assert p.agent_errors == 1 and p.last_agent_error == "RuntimeError: act failed"


def test_gpu_features_from_labels():
    from dlsched.epp.signals import gpu_features
    assert gpu_features({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "variant": "FP8"}) == (3.35, 8.0)
    assert gpu_features({"gpu": "a100-sxm4-40gb"}) == (2.0, 0.0)   # A100, not A10
    assert gpu_features({"gpu": "NVIDIA-A10G"}) == (0.6, 0.0)
    assert gpu_features({"quantization": "awq"}) == (0.0, 4.0)
    assert gpu_features({}) == (0.0, 0.0)
