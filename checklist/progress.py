"""Progress of long commands (seed_cases, audit_verify, bench): a bar on a terminal, one
summary line otherwise (CI logs, pipes), so logs stay readable and a person sees it move."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm


class Progress:
    def __init__(
        self, label: str, total: int | None, *, unit: str = "it", file: TextIO | None = None
    ) -> None:
        self.label, self.unit = label, unit
        self.file = file or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self.terminal = self.file.isatty()
        self.bar = tqdm(
            total=total,
            desc=label,
            unit=unit,
            file=self.file,
            disable=not self.terminal,
            leave=True,
        )

    def update(self, count: int = 1) -> None:
        self.done += count
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()
        if not self.terminal:
            seconds = time.monotonic() - self.started
            rate = self.done / seconds if seconds > 0 else 0.0
            self.file.write(
                f"{self.label}: {self.done:,} {self.unit} in {seconds:.1f} s ({rate:,.0f}/s)\n"
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
