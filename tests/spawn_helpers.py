"""Helpers for tests that start edgepose in a subprocess or wait on one."""
from __future__ import annotations


def default_sigint() -> None:
    """``preexec_fn`` for subprocesses a test interrupts with SIGINT. A test run started in the background
    by a non-interactive shell inherits an *ignored* SIGINT, and Python then installs no
    KeyboardInterrupt handler in the child: restore the default so Ctrl-C behaves as in a terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(pred, timeout: float, poll_s: float = 0.05) -> bool:
    """Poll ``pred()`` until it is true (True) or ``timeout`` seconds pass (False)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll_s)
    return False


def assert_one_error_line(proc) -> str:
    """A finished ``edgepose`` process failed as a user error: rc 2, exactly one ``error:`` line on
    stderr and no traceback; returns that line."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def video_frames(path, n: int, size=None) -> list:
    """The first ``n`` frames of a video (BGR), optionally resized to ``size`` (w, h)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < n:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f if size is None else cv2.resize(f, size, interpolation=cv2.INTER_AREA))
    finally:
        cap.release()
    return frames
