"""Signal handling of a run: SIGTERM and SIGINT ask the step loop to checkpoint and stop."""
import contextlib
import signal
import threading


@contextlib.contextmanager
def stop_on_signals(sim):
    """While the block runs, SIGTERM and SIGINT set ``sim._signal`` (the step loop then
    checkpoints and stops) instead of ending the process; a second signal raises
    KeyboardInterrupt.  Only in the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if sim._signal is not None:
            raise KeyboardInterrupt
        sim._signal = signum

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
