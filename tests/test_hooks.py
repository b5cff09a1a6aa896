"""Hooks: schedules, callsite order, held tendencies, member selectors."""
import numpy as np
import pytest

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.hooks import Hook, Schedule


class Recorder(Hook):
    """Records (callsite, step) into a shared log; returns a zero tendency or the state."""

    def __init__(self, log, callsite, **kwargs):
        self.callsite = callsite
        super().__init__(**kwargs)
        self.log = log

    def __call__(self, sim, state, previous=None):
        self.log.append((self.callsite, sim.step))
        if self.callsite == "tendency":
            return np.zeros_like(state)
        if self.callsite in ("post_step", "replace"):
            return state.copy()


class CallTendency(Hook):
    """Tendency ``pattern * (number of the call at which it would be due)``.

    With ``held_every = k`` and ``every = 1`` it returns what an ``every = k`` hook holds
    at each step, so the two must give the same trajectory.
    """

    callsite = "tendency"

    def __init__(self, pattern, held_every=1, **kwargs):
        super().__init__(**kwargs)
        self.pattern, self.held_every = pattern, held_every

    def __call__(self, sim, state, previous=None):
        return self.pattern[:state.shape[0]] * (1.0 + sim.step // self.held_every)


def _sim(case, hooks=(), **overrides):
    sim = Simulation.from_case(case, overrides=overrides)
    for hook in hooks:
        sim.add_hook(hook)
    return sim


def _pattern(sim, scale=50.0):
    rng = np.random.default_rng(1)
    shape = sim.state.shape
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * (sim.grid.k2 < 25)


@pytest.mark.parametrize("every,offset,expected", [(1, 0, list(range(11))), (3, 0, [0, 3, 6, 9]),
                                                  (4, 2, [2, 6, 10])])
def test_step_schedule_calls_exactly_at_named_steps(case, every, offset, expected):
    log = []
    sim = _sim(case, [Recorder(log, "observe", every=every, offset=offset)])
    sim.advance(4)
    sim.advance(6)  # a second advance neither repeats nor skips a step
    assert [s for _, s in log] == expected


def test_interval_schedule_is_due_at_first_step_after_each_target(case):
    # dt = 1e-3: targets 0.0025, 0.0060, 0.0095 -> steps 3, 6, 10 (6 within tolerance)
    log = []
    sim = _sim(case, [Recorder(log, "observe", interval=0.0035, offset=0.0025)])
    sim.advance(10)
    assert [s for _, s in log] == [3, 6, 10]
    sched = Schedule(interval=0.0035, offset=0.0025)
    assert [s for s in range(11) if sched.due(s, 1e-3)] == [3, 6, 10]


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Schedule(every=2, interval=0.1)
    with pytest.raises(ValueError):
        Schedule(every=0)
    with pytest.raises(ValueError):
        Schedule(every=2, offset=0.5)


def test_callsite_order_within_a_step(case):
    log = []
    hooks = [Recorder(log, c) for c in ("observe", "post_step", "tendency")]
    sim = _sim(case, hooks)
    sim.advance(2)
    assert log == [("observe", 0), ("tendency", 0), ("post_step", 1), ("observe", 1),
                   ("tendency", 1), ("post_step", 2), ("observe", 2)]


def test_held_tendency_equals_recomputing_the_held_value_every_step(case):
    base = _sim(case)
    pattern = _pattern(base)
    held = _sim(case, [CallTendency(pattern, held_every=3, every=3)])
    again = _sim(case, [CallTendency(pattern, held_every=3, every=1)])
    none = _sim(case)
    for sim in (held, again, none):
        sim.advance(10)
    assert np.array_equal(held.state, again.state)
    assert held.hooks[0].stats.calls == 4 and again.hooks[0].stats.calls == 10
    assert not np.allclose(held.state, none.state)


def test_tendency_hooks_sum(case):
    base = _sim(case)
    p, q = _pattern(base), _pattern(base, scale=-20.0) * 1j
    two = _sim(case, [CallTendency(p, name="p"), CallTendency(q, name="q")])
    one = _sim(case, [CallTendency(p + q, name="pq")])
    two.advance(10)
    one.advance(10)
    np.testing.assert_allclose(two.state, one.state, rtol=0, atol=1e-12 * np.abs(one.state).max())


def test_hold_noise_is_white_with_the_asked_deviation_and_per_member(case):
    case["grid"]["shape"] = [64, 64]
    sigma = 5e-5
    sim = _sim(case, [CallTendency(np.zeros((2, 64, 33)), every=5, hold_noise=sigma)], **{"ensemble.members": 2})
    sim.advance(1)
    noise = sim.equation.transforms.to_physical(sim._tendency)
    assert abs(noise.std() / sigma - 1) < 0.02 and abs(noise.mean()) < 4 * sigma / 90
    alone = _sim(case, [CallTendency(np.zeros((1, 64, 33)), every=5, hold_noise=sigma)],
                 **{"ensemble.members": 1, "ensemble.first_member": 1})
    alone.advance(7)
    sim.advance(6)
    assert np.array_equal(alone.state[0], sim.state[1])


def test_replace_hook_advances_its_steps_and_post_step_sees_previous(case):
    class Halve(Hook):
        callsite = "replace"

        def __call__(self, sim, state, previous=None):
            return 0.5 * state

    class CheckPrevious(Hook):
        callsite = "post_step"

        def start(self, sim):
            self.seen = []

        def __call__(self, sim, state, previous=None):
            self.seen.append((sim.step, np.abs(previous).sum(), np.abs(state).sum()))
            return state

    post = CheckPrevious()
    sim = _sim(case, [Halve(every=4), post])
    w0 = sim.state.copy()
    sim.advance(4)
    assert sim.step == 4 and np.array_equal(sim.state, 0.5 * w0)
    sim.advance(3)  # fewer than 4 steps left in this advance: the solver takes them
    assert sim.step == 7 and [s for s, _, _ in post.seen] == [4, 5, 6, 7]
    assert post.seen[0][1] == pytest.approx(np.abs(w0).sum())


def test_members_selector_leaves_other_members_alone(case):
    base = _sim(case, **{"ensemble.members": 3})
    pattern = _pattern(base)
    sel = _sim(case, [CallTendency(pattern, members="1:2")], **{"ensemble.members": 3})
    base.advance(5)
    sel.advance(5)
    assert np.array_equal(sel.state[[0, 2]], base.state[[0, 2]])
    assert not np.allclose(sel.state[1], base.state[1])


def test_hook_errors_name_the_hook(case):
    class Wrong(Hook):
        callsite = "tendency"

        def __call__(self, sim, state, previous=None):
            return state[:, :4]

    sim = _sim(case, [Wrong(name="wrong")])
    with pytest.raises(ValueError, match="hook 'wrong' .*returned"):
        sim.advance(1)
    with pytest.raises(CaseError, match="used twice"):
        _sim(case, [Recorder([], "observe", name="a"), Recorder([], "observe", name="a")])
    with pytest.raises(CaseError, match="selects none"):
        _sim(case, [Recorder([], "observe", members="5:9")])
