"""The registry `enlarger worker` and `enlarger serve` load by default (setting `handlers`).

Domain packages (`library`, `catalog`) register their job handlers here as they land; a
job whose type nobody registered fails at once with UNKNOWN_JOB_TYPE.
"""

from enlarger.queue.registry import Registry

registry = Registry()
