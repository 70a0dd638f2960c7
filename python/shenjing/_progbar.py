"""Keras-style progress bar: redraws in place on a terminal, plain lines otherwise."""
import sys
import time

import numpy as np


def _fmt_value(v):
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"


def _fmt_time_per_step(t):
    if t >= 1:
        return f"{t:.0f}s/step"
    if t >= 1e-3:
        return f"{t * 1e3:.0f}ms/step"
    return f"{t * 1e6:.0f}us/step"


class Progbar:
    """Displays a progress bar.

    Args:
        target: total number of steps expected, or None if unknown.
        width: width of the bar in characters (20 by default).
        verbose: 0 silent, 1 live bar, 2 one line at the end.
        interval: minimum seconds between redraws on a terminal (0.05 by default).
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step",
                 stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._stream = stream or sys.stdout
        self._dynamic = bool(getattr(self._stream, "isatty", lambda: False)()) or \
            "ipykernel" in sys.modules
        self._values = {}
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._prev_len = 0
        self._seen = 0

    def update(self, current, values=None, finalize=None):
        """Sets the step reached and the values to show (name -> value, shown as given)."""
        if values:
            self._values = dict(values)
        self._seen = current
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if self.verbose == 0:
            return
        now = time.perf_counter()
        if not finalize and (not self._dynamic or self.verbose == 2):
            return
        if not finalize and now - self._last_update < self.interval:
            return
        self._last_update = now
        elapsed = now - self._start
        per_step = elapsed / current if current else 0.0
        parts = []
        if self.verbose == 1:
            if self.target is not None:
                digits = len(str(self.target))
                filled = int(self.width * current / self.target) if self.target else self.width
                bar = "━" * filled
                rest = "━" * (self.width - filled)
                if self._dynamic:
                    bar = f"\x1b[32m{bar}\x1b[0m\x1b[37m{rest}\x1b[0m"
                else:
                    bar += rest
                parts.append(f"{current:{digits}d}/{self.target} {bar}")
            else:
                parts.append(f"{current:7d}/Unknown")  # Keras's, until an epoch ends
            if finalize or not self.target:
                parts.append(f"{elapsed:.0f}s {_fmt_time_per_step(per_step)}")
            else:
                eta = per_step * (self.target - current) if self.target else 0
                parts.append(f"{eta:.0f}s {_fmt_time_per_step(per_step)}")
            line = " ".join(parts)
        else:
            line = f"{current}/{self.target} - {elapsed:.0f}s - {_fmt_time_per_step(per_step)}"
        for k, v in self._values.items():
            # An array-valued metric (thresholds lists, per-class scores) shows its mean, as
            # Keras's Progbar does.
            line += f" - {k}: {_fmt_value(float(np.mean(np.asarray(v))))}"
        if self._dynamic and self.verbose == 1:
            pad = max(0, self._prev_len - len(line))
            self._stream.write("\r" + line + " " * pad)
            self._prev_len = len(line)
            if finalize:
                self._stream.write("\n")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def add(self, n, values=None):
        self.update(self._seen + n, values)
