"""Interrupting a long job in tests: make the n-th call of ``Simulation.advance`` raise
KeyboardInterrupt (as Ctrl-C would mid-run), for the resume tests of the generators."""
from hybridsolver import Simulation


def interrupt_advance(monkeypatch, call):
    """Patch ``Simulation.advance`` so that its ``call``-th call raises KeyboardInterrupt;
    returns a function that restores the original."""
    original, calls = Simulation.advance, {"n": 0}

    def interrupted(self, steps):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, steps)

    monkeypatch.setattr(Simulation, "advance", interrupted)
    return lambda: monkeypatch.setattr(Simulation, "advance", original)
