"""Progress of a training run on stderr: a bar on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from qrnn_tn.training.results import Evaluation

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as ``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """A tqdm bar on a terminal, plain log lines (at validations) otherwise.

    ``total`` steps, of which ``initial`` are done; ``name`` labels the lines; nothing is
    shown unless ``enabled``.
    """

    def __init__(self, total: int, initial: int, name: str, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.name = name or "train"
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            self.bar = tqdm(total=total, initial=initial, desc=self.name, file=sys.stderr)

    def step(self, record: dict[str, Any]) -> None:
        """Advance the bar by one training step (``record``: its metrics line)."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)

    def validation(self, step: int, train_loss: float, val: Evaluation) -> None:
        """Report the validation made at ``step`` (with an estimate of the time left)."""
        text = (
            f"val loss {val.loss:.4f} acc {val.accuracy:.3f} overhead {val.overhead:.2f}"
            f" log-overhead {val.log_overhead:.2f}"
        )
        if val.discarded is not None:
            text += f" discarded {val.discarded:.2g}"
        if self.bar is not None:
            self.bar.write(f"{self.name} step {step}: {text}", file=sys.stderr)
        elif self.enabled:
            seconds = val.seconds or 0.0
            left = (self.total - step) * seconds / step
            print(
                f"{self.name} step {step}/{self.total}: loss {train_loss:.4f} | {text} "
                f"| {seconds:.1f}s, about {format_duration(left)} left",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()
