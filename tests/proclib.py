# proclib: the one way the tests stop a process they started: a signal (SIGTERM unless told), a grace period,
# then SIGKILL. Import with the source tree's tests/ folder on sys.path.
import signal
import subprocess


def stop_process(proc, sig=signal.SIGTERM, grace=10):
    """Stops proc if it still runs and reaps it; returns its exit status (None when proc is None)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()
