"""This process's place in a multi-worker cluster, read from ``TF_CONFIG`` without TensorFlow.

tf.distribute's convention: ``{"cluster": {"chief": [...], "worker": ["host:port", ...]},
"task": {"type": "worker", "index": i}}`` in every process, the same cluster everywhere and
each process's own task. The chief is the ``chief`` task if there is one, else worker 0.
Parsing it here, before TensorFlow starts, turns a malformed one into one line (TensorFlow's
own parser raises a traceback deep inside the strategy).
"""

from __future__ import annotations

import dataclasses
import json
import os

from tfcoord.errors import UserError

TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}\'')
# Task types that train; "chief" is worker 0 under another name (tf.distribute's convention).
TRAINING_TASKS = ("chief", "worker")

@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """This process's place in a multi-worker cluster, read from ``TF_CONFIG``."""

    task_type: str
    task_index: int
    num_workers: int
    address: str
    cluster_has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The chief writes the run: ``chief`` if the cluster has one, else worker 0."""
        return self.task_type == "chief" or (self.task_index == 0 and not self.cluster_has_chief)

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_index}"


def cluster_role(environ=os.environ) -> ClusterRole:
    """Parse and check ``TF_CONFIG``; a missing or malformed one is a UserError with an example."""
    text = environ.get("TF_CONFIG", "")
    fix = f"set it on every machine, e.g. {TF_CONFIG_EXAMPLE} (index 1 on the second)"
    if not text.strip():
        raise UserError(f"--strategy multi_worker needs the TF_CONFIG environment variable; {fix}")
    try:
        config = json.loads(text)
    except ValueError as err:
        raise UserError(f"TF_CONFIG is not valid JSON ({err}); {fix}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG needs a \"cluster\" and a \"task\" object; {fix}")
    others = sorted(set(cluster) - set(TRAINING_TASKS))
    if others:
        raise UserError(f"TF_CONFIG cluster has {', '.join(others)} tasks, which tfcoord does not run "
                        f"(only chief and worker); {fix}")
    addresses = {}
    for task_type in TRAINING_TASKS:
        listed = cluster.get(task_type, [])
        if not isinstance(listed, list) or not all(isinstance(a, str) and _is_host_port(a) for a in listed):
            raise UserError(f"TF_CONFIG cluster.{task_type} must be a list of \"host:port\" strings, got "
                            f"{json.dumps(listed)}; {fix}")
        addresses[task_type] = listed
    if len(addresses["chief"]) > 1:
        raise UserError(f"TF_CONFIG lists {len(addresses['chief'])} chiefs; a cluster has at most one; {fix}")
    if not addresses["chief"] and not addresses["worker"]:
        raise UserError(f"TF_CONFIG cluster lists no worker; {fix}")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in TRAINING_TASKS or not isinstance(index, int) or isinstance(index, bool):
        raise UserError(f"TF_CONFIG task must be {{\"type\": \"worker\" or \"chief\", \"index\": N}}, got "
                        f"{json.dumps(task)}; {fix}")
    if not 0 <= index < len(addresses[task_type]):
        raise UserError(f"TF_CONFIG task index {index} is outside cluster.{task_type} "
                        f"({len(addresses[task_type])} listed); {fix}")
    return ClusterRole(task_type, index, len(addresses["chief"]) + len(addresses["worker"]),
                       addresses[task_type][index], cluster_has_chief=bool(addresses["chief"]))


def _is_host_port(address: str) -> bool:
    host, colon, port = address.rpartition(":")
    return bool(host) and bool(colon) and port.isdigit()
