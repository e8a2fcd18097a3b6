"""A flow's CPU priority: its niceness from FLOW_NICE_BY_FLOW, set as the flow starts.

Set on the calling thread before Bytewax starts its workers, which inherit it (on Linux a
thread's niceness is its own, and new threads take their creator's)."""

from __future__ import annotations

import logging
import os

from loyalnest.settings import Settings

log = logging.getLogger("loyalnest.priority")


def apply_priority(settings: Settings, flow: str) -> int:
    """Set the niceness configured for `flow`; return the niceness it runs with."""
    wanted = settings.flow_nice_by_flow.get(flow)
    if wanted is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, wanted)
        except PermissionError:
            log.warning(
                "%s flow: niceness %d needs privilege (root or CAP_SYS_NICE); running at %d",
                flow,
                wanted,
                os.getpriority(os.PRIO_PROCESS, 0),
            )
    return os.getpriority(os.PRIO_PROCESS, 0)
