"""Errors of the graph runtime. Each prints as one line; the structured detail rides along."""
from __future__ import annotations

from pruning_core.errors import VideoPruneError


class WorkflowError(VideoPruneError):
    """A workflow that cannot run. ``payload`` is ComfyUI's ``{"error": ..., "node_errors": ...}`` shape."""

    def __init__(self, payload: dict):
        self.payload = payload
        super().__init__(summarize(payload))


class NodeExecutionError(VideoPruneError):
    """A node raised while running. Names the node so the user can find it in the graph."""

    def __init__(self, node_id: str, class_type: str, exc: BaseException):
        self.node_id = node_id
        self.class_type = class_type
        self.exception_type = type(exc).__name__
        self.exception_message = str(exc).strip().splitlines()[0] if str(exc).strip() else self.exception_type
        super().__init__(f"node {node_id} ({class_type}) failed: {self.exception_message}")

    def to_dict(self) -> dict:
        """The fields ComfyUI sends in its ``execution_error`` message."""
        return {"node_id": self.node_id, "node_type": self.class_type,
                "exception_type": self.exception_type, "exception_message": self.exception_message}


class Interrupted(VideoPruneError):
    """The run was interrupted; ``node_id`` is the node that was running or about to run."""

    def __init__(self, node_id: str | None, class_type: str | None = None):
        self.node_id = node_id
        self.class_type = class_type
        where = f" at node {node_id} ({class_type})" if node_id is not None else ""
        super().__init__(f"interrupted{where}")


def summarize(payload: dict) -> str:
    """One line naming the first problem: ``node 3 (VideoPruneFastV): Value 2.0 bigger than max of 1.0``."""
    for node_id, entry in (payload.get("node_errors") or {}).items():
        for err in entry.get("errors", []):
            details = f" ({err['details']})" if err.get("details") else ""
            more = _count(payload) - 1
            tail = f"; and {more} more" if more > 0 else ""
            return f"node {node_id} ({entry.get('class_type')}): {err['message']}{details}{tail}"
    err = payload.get("error") or {}
    details = f" ({err['details']})" if err.get("details") else ""
    return f"{err.get('message', 'invalid workflow')}{details}"


def _count(payload: dict) -> int:
    return sum(len(e.get("errors", [])) for e in (payload.get("node_errors") or {}).values())


def error_entry(type_: str, message: str, details: str = "", **extra_info) -> dict:
    """One entry of ComfyUI's ``errors`` lists."""
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info}
