"""An example third-party Frontier plugin: a "power of two choices" router.

Copy this package to start your own. It shows the three pieces a plugin needs:

1. a class implementing a contract from :mod:`frontier.plugins` (here
   :class:`~frontier.plugins.ClusterScheduler`);
2. an attrs config class subclassing the slot's base config, whose fields become
   the keys users write under ``[cluster_scheduler]``;
3. a ``frontier_register_*`` hook implementation, and an entry point in the
   ``frontier`` group of ``pyproject.toml`` that points at this module.

Once installed, ``frontier plugins list`` shows it and a config selects it with
``[cluster_scheduler] type = "power_of_two"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from frontier.config import ClusterSchedulerConfig
from frontier.hookspecs import hookimpl
from frontier.plugins import ClusterScheduler
from frontier.request import Request

__all__ = ["PowerOfTwoConfig", "PowerOfTwoRouter"]


@attrs.frozen(kw_only=True)
class PowerOfTwoConfig(ClusterSchedulerConfig):
    """Options of the power-of-two router.

    Attributes:
        choices: Replicas sampled per request (2 in the classic policy).
    """

    type: str = "power_of_two"
    choices: int = 2


class PowerOfTwoRouter(ClusterScheduler):
    """Sample ``choices`` replicas at random; send the request to the least loaded.

    Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (2001):
    sampling two queues and joining the shorter cuts the maximum load from
    ``log n / log log n`` to ``log log n``. Load is the replica's outstanding
    requests; ties go to the lower replica index. Seeded by the run's seed.
    """

    def __init__(self, config: PowerOfTwoConfig, num_replicas: int, seed: int) -> None:
        super().__init__(config, num_replicas, seed)
        self._rng = np.random.default_rng(seed)
        self._choices = max(1, min(config.choices, num_replicas))

    def route(self, request: Request, replicas: Sequence[Any]) -> int:
        """Index of the least loaded of the sampled replicas."""
        sampled = self._rng.choice(self.num_replicas, size=self._choices, replace=False)
        return int(min(sampled, key=lambda i: (replicas[i].num_outstanding, i)))


@hookimpl
def frontier_register_cluster_schedulers(registry):
    """Add ``power_of_two``."""
    registry.register("power_of_two", PowerOfTwoRouter, PowerOfTwoConfig)
