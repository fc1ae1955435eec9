"""When to try a failed submission again: exponential backoff with full jitter. No AWS, no HTTP.

After the n-th attempt failed (n >= 1) the next one waits a whole number of seconds drawn
uniformly from 0 .. min(cap, base * 2**(n-1)). Full jitter spreads a crowd of jobs that failed
together (a vendor outage) instead of sending them back in lock step.

With the template's defaults (base 2 s, cap 300 s, 8 receives) the ceilings are
2, 4, 8, 16, 32, 64, 128, 256 s: a job is given up after at most about 8.5 minutes of waiting
(about 4 minutes on average).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# SQS refuses DelaySeconds above 15 minutes; visibility timeouts above 12 hours.
MAX_DELAY_SECONDS = 900


@dataclass(frozen=True)
class Backoff:
    base: int
    cap: int
    # Drawn from the OS each time, not from a seeded state: with SnapStart (template parameter)
    # every environment resumed from one snapshot would otherwise draw the same "random" delays.
    rng: random.Random = field(default_factory=random.SystemRandom, compare=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < self.base or self.cap > MAX_DELAY_SECONDS:
            raise ValueError(f"need 0 <= base <= cap <= {MAX_DELAY_SECONDS}; got base={self.base} cap={self.cap}")

    def ceiling(self, failed_attempts: int) -> int:
        """The longest wait after `failed_attempts` failures."""
        exponent = max(failed_attempts, 1) - 1
        return min(self.cap, self.base * 2 ** min(exponent, 30))

    def delay(self, failed_attempts: int) -> int:
        return self.rng.randint(0, self.ceiling(failed_attempts))
