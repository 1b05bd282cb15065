"""The Ray actor: a warm :class:`BlockRunner` in a worker process."""

import os

import ray

from sweeper.blocks import BlockTask
from sweeper.runner import BlockRunner


@ray.remote(num_cpus=1)
class BlockActor:
    def __init__(self, kernel_class, fixed, outputs):
        self.runner = BlockRunner(kernel_class, fixed, outputs)

    def run(self, task: BlockTask):
        return self.runner.run(task)

    def ready(self) -> dict:
        """Returns once the actor is up and its kernel warm: where it runs, and the warm-up's seconds."""
        warm_up = self.runner.warm_up()  # before any block: calls run one at a time, in order
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "warm_up": warm_up}
