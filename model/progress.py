"""The stages of a training run and an estimate of the time left in the whole run, printed
as each stage starts (each stage's own progress bar tells the time left in it). A stage's
cost is estimated from its size at rates measured on a 2-core machine; the estimate of what
is left is scaled by how fast this machine ran the stages done so far."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from .settings import TrainSettings

# Seconds per unit on the 2-core reference machine (docs/train-your-own.md, "What it costs")
TEACHER_STEP = 0.0009  # one word piece of a labelled text through one epoch of fine-tuning
TEACHER_READ = 0.0002  # one word piece of a text labelled or embedded by the teacher
BACKGROUND_READ = 0.014  # one background text embedded by the teacher (longer, on average)
STUDENT_STEP = 0.0014  # one training sequence of the compact model in one epoch
FIT_PER_TEXT = 0.0006  # fitting the heads, per background and training text
BACKGROUND_LOAD = 30.0  # reading (and the first time fetching) the background text

@dataclass
class Clock:
    """Stage names and estimated seconds, in order; `start(name)` marks one begun."""

    stages: dict[str, float]
    write: Callable[[str], None] = tqdm.write
    began: float = field(default_factory=lambda: time.monotonic())
    done: dict[str, float] = field(default_factory=dict)  # stage -> seconds it took
    current: str | None = None
    since: float = 0.0

    def start(self, name: str) -> None:
        self.finish()
        self.current, self.since = name, time.monotonic()
        names = list(self.stages)
        self.write(f"[{names.index(name) + 1}/{len(names)}] {name}: {_clock(self.since - self.began)} so far, "
                   f"about {_clock(self.left())} left in the run")

    def finish(self) -> None:
        if self.current is not None:
            self.done[self.current] = time.monotonic() - self.since
            self.current = None

    def left(self) -> float:
        """The estimated seconds of the stages not finished, at this machine's pace so far."""
        spent = sum(self.done.values())
        planned = sum(self.stages[name] for name in self.done)
        pace = spent / planned if planned > 1.0 else 1.0
        return pace * sum(cost for name, cost in self.stages.items() if name not in self.done)

    def close(self) -> None:
        self.finish()
        self.write(f"trained in {_clock(time.monotonic() - self.began)}: "
                   + ", ".join(f"{name} {_clock(s)}" for name, s in self.done.items()))


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def plan(settings: TrainSettings, n_train: int, n_val: int, n_unlabelled: int, n_background: int,
         teacher: bool, background_cached: bool, pieces: float = 32.0) -> dict[str, float]:
    """The stages of training after the background text is read, with their estimated
    seconds. pieces: the mean word pieces of a text as the teacher reads it (at most its
    max_len), which its cost follows."""
    n_bg = min(n_background, settings.encoder_background)
    stages = {}
    if teacher:
        stages["the teacher"] = pieces * (TEACHER_READ * (n_train + n_unlabelled) + (
            TEACHER_STEP * settings.teacher.epochs * n_train + TEACHER_READ * (n_train + n_unlabelled + n_val)
            if settings.teacher.epochs else 0.0))
        if settings.background_emb and not background_cached:
            stages["the teacher's embeddings of the background"] = BACKGROUND_READ * n_bg
    per_epoch = (n_train * settings.labelled_repeats + min(n_unlabelled, settings.unlabelled_per_epoch)
                 + min(n_bg, settings.background_per_epoch) + settings.crops_per_epoch)
    stages["training the compact model"] = STUDENT_STEP * settings.epochs * per_epoch
    stages["fitting the familiarity and calibration"] = FIT_PER_TEXT * (n_background + 4 * n_train + 4 * n_val)
    return stages
