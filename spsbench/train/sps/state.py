"""What SPS keeps between its phases, as two records instead of loose trainer attributes.

`Rollouts` is this rank's RL-phase rollouts since the last IRL phase (grouped by prompt), plus the rows
still waiting for their sequence log-prob from the loss's own forward. `PhaseState` is where the
schedule stands and what the last IRL phase saw (kept for inspection and tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]      # prompt_ids, completion_ids, prompt_pad, logp, reward, correct, truncated, batch


@dataclass
class Rollouts:
    groups: list[list[Row]] = field(default_factory=list)     # one list per prompt, whole on this rank
    pending: dict[int, Row] = field(default_factory=dict)     # row id -> rollout awaiting its log-prob
    next_row: int = 0
    next_batch: int = 0                                       # generation batches recorded (L2TE's batch scope)
    capture: list[Any] | None = None                          # the loss forward's per-token log-probs

    def take(self) -> list[list[Row]]:
        """The recorded groups, leaving the buffer empty for the next RL phase."""
        groups, self.groups = self.groups, []
        return groups

    def add_pending(self, row: Row) -> int:
        self.next_row += 1
        self.pending[self.next_row] = row
        return self.next_row


@dataclass
class PhaseState:
    index: int = 0                    # IRL phases run so far
    last_irl_step: int = 0            # global step of the last IRL phase
    rl_seconds: float = 0.0           # RL training time since the last IRL phase
    log: list[dict[str, Any]] = field(default_factory=list)
    last_groups: list[list[Row]] = field(default_factory=list)
    last_selection: list[Row] = field(default_factory=list)
