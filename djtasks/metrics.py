"""Public import path ``djtasks.metrics``; the code lives in ``djtasks.ops.metrics``."""

from djtasks.ops.metrics import (
    DjtasksCollector,
    allowed,
    render,
    view,
)

__all__ = [
    "DjtasksCollector",
    "allowed",
    "render",
    "view",
]
