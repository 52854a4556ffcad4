"""The learned picker's guard unit (guard_unit=key): Picker.pick passes the
hash of the prompt's first prefix block (signals.prompt_blocks, reduced
modulo 2**64) as Agent.act's unit, a request without a full block a unit
of its own; default_agent_spec asks for guard_unit=key; a library without
dlsched_act_unit falls back to plain act. Driven at the Picker level with a
recording fake agent, and once with a real agent whose decisions must keep
one arm per prompt."""
from __future__ import annotations

import json
import random

import dlsched
from dlsched.epp import picker as picker_mod
from dlsched.epp.discovery import Endpoint
from dlsched.epp.picker import FEATURES_PER_SLOT, Picker, default_agent_spec, request_prompt
from dlsched.epp.signals import BLOCK_CHARS, Scraper, ServerMetrics, prompt_blocks

U64 = 2 ** 64
EPS = [Endpoint(f"s{i}", "default", f"10.0.0.{i + 1}", 8000) for i in range(3)]


class StaticScraper(Scraper):
    """No network: metrics are put by the test."""

    def set_endpoints(self, endpoints):
        pass


class Recorder:
    """A fake agent: follows the hint, records every act call's keywords."""
    n_actions, n_features = 4, 4 * FEATURES_PER_SLOT

    def __init__(self, has_unit=True):
        self.calls = []
        self.has_unit = has_unit

    def act(self, obs, mask=None, hint=None, greedy=False, unit=None):
        self.calls.append({"mask": list(mask), "hint": hint, "unit": unit})
        if unit is not None and not self.has_unit:
            raise dlsched.LibraryError("dlsched_act_unit needs libdlsched 1.4 or later")
        return dlsched.Decision(hint, len(self.calls), False, False, 0.0, 1.0, 0)

    def observe(self, ticket, reward, next_obs=None, terminated=False, truncated=False):
        pass


def make_picker(agent):
    sc = StaticScraper()
    p = Picker(max_endpoints=4, policy="learned", agent=agent, scraper=sc)
    p.set_endpoints(EPS)
    for ep in EPS:
        sc.put(ep.key, ServerMetrics(1, 1, 0.1, "vllm"))
    return p


def body(prompt):
    return json.dumps({"model": "m", "prompt": prompt, "max_tokens": 8}).encode()


def chat(system, user):
    return json.dumps({"model": "m", "messages": [{"role": "system", "content": system},
                                                  {"role": "user", "content": user}]}).encode()


SYSTEM = "You are a careful assistant. Answer briefly and cite the source. " * 3


def test_default_spec_asks_for_units():
    spec = default_agent_spec(16).split()
    assert "guard_unit=key" in spec and "guard=1" in spec
    assert "guard_block=32" in spec  # still the regime check's batches (see the docstring)


def test_the_unit_is_the_first_prefix_block():
    agent = Recorder()
    p = make_picker(agent)
    bodies = [body(SYSTEM + "question one"), body(SYSTEM + "another question, longer " * 9),
              chat(SYSTEM, "hi"), chat(SYSTEM, "hello there " * 20),
              body("x" * BLOCK_CHARS + "tail"), body("y" * (3 * BLOCK_CHARS))]
    for b in bodies:
        r = p.pick({}, b, None)
        assert r.status == 200 and r.context.ticket == len(agent.calls)
    assert len(agent.calls) == len(bodies)
    for b, call in zip(bodies, agent.calls):
        blocks = prompt_blocks(request_prompt(b))
        assert blocks and call["unit"] == blocks[0] % U64
        assert 0 <= call["unit"] < U64
        assert call["hint"] is not None and call["mask"][:3] == [1, 1, 1]
    units = [c["unit"] for c in agent.calls]
    # one shared prompt, one unit, whatever follows it; another prompt, another
    assert units[0] == units[1] and units[2] == units[3]
    assert len({units[0], units[2], units[4], units[5]}) == 4


def test_a_negative_block_hash_is_taken_modulo_2_64(monkeypatch):
    # prompt_blocks holds Python hashes, negative half of the time
    monkeypatch.setattr(picker_mod, "prompt_blocks", lambda prompt: [-5, 7] if prompt else [])
    agent = Recorder()
    p = make_picker(agent)
    p.pick({}, body("anything"), None)
    assert agent.calls[-1]["unit"] == U64 - 5


def test_a_request_without_a_block_is_a_unit_of_its_own():
    agent = Recorder()
    p = make_picker(agent)
    blocked = body(SYSTEM)
    for b in (None, b"", body("short"), blocked, body("x" * (BLOCK_CHARS - 1)), b"not json",
              None, blocked):
        p.pick({}, b, None)
    units = [c["unit"] for c in agent.calls]
    own = [units[i] for i in (0, 1, 2, 4, 5, 6)]
    assert None not in units  # never plain act: that would be one unit (0) for all of them
    assert len(set(own)) == len(own)
    first = prompt_blocks(request_prompt(blocked))[0] % U64
    assert units[3] == units[7] == first and first not in own


def test_a_library_without_act_unit_falls_back_to_plain_act():
    agent = Recorder(has_unit=False)
    p = make_picker(agent)
    for _ in range(3):
        r = p.pick({}, body(SYSTEM), None)
        assert r.status == 200 and r.context.ticket != 0
    # the first pick tried the unit once, then plain act; later picks plain act only
    assert [c["unit"] is None for c in agent.calls] == [False, True, True, True]
    assert p.agent_errors == 0


def test_real_agent_keeps_one_arm_per_prompt():
    """The default agent (apprenticeship off, exploration 0, half of the
    guard's slots to the learned policy, no support needed): every request
    of one prompt is decided by one arm; prompts split between the arms."""
    spec = (default_agent_spec(4).replace("apprentice=2000", "apprentice=0")
            .replace("epsilon_start=0.05", "epsilon_start=0")
            .replace("epsilon_end=0.01", "epsilon_end=0")
            + " guard_share=0.5 guard_min_visits=0")
    real = dlsched.Agent(spec)
    seen = {}

    class Spy:
        n_actions, n_features = real.n_actions, real.n_features

        def act(self, obs, mask=None, hint=None, greedy=False, unit=None):
            d = real.act(obs, mask=mask, hint=hint, greedy=greedy, unit=unit)
            seen.setdefault(unit, []).append((d, hint))
            return d

        def observe(self, *a, **k):
            return real.observe(*a, **k)

    try:
        p = make_picker(Spy())
        prompts = [f"tenant {i:03d} system prompt: " + "policy text " * 8 for i in range(48)]
        order = [pr for pr in prompts for _ in range(5)]
        random.Random(2).shuffle(order)
        for i, pr in enumerate(order):
            # the ready endpoints' load changes, so does the mix's pick
            for k, ep in enumerate(EPS):
                p.scraper.put(ep.key, ServerMetrics((i + k) % 4, 1, 0.1 * k, "vllm"))
            r = p.pick({}, body(pr + f" question {i}"), None)
            assert r.status == 200 and r.context.ticket != 0
        assert len(seen) == len(prompts)
        arms = set()
        for unit, ds in seen.items():
            incumbent = {d.incumbent for d, _ in ds}
            assert len(incumbent) == 1, f"unit {unit}: both arms"
            if True in incumbent:
                assert all(d.action == hint and d.probability == 1.0 for d, hint in ds)
            arms |= incumbent
        assert arms == {True, False}
        st = real.stats()
        assert st.guard_by_incumbent + st.guard_agreed + st.guard_by_learned == len(order)
    finally:
        real.close()
