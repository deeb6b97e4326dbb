"""The registry `enlarger worker` and `enlarger serve` load by default (setting `handlers`).

Each domain package keeps its own registry of job handlers and is included here; a job
whose type nobody registered fails at once with UNKNOWN_JOB_TYPE.
"""

from enlarger.catalog.jobs import registry as catalog_registry
from enlarger.library.jobs import registry as library_registry
from enlarger.queue.registry import Registry

registry = Registry()
registry.include(library_registry)
registry.include(catalog_registry)
