"""ITU-T Q.850 cause codes as Asterisk reports them when a channel hangs up."""

from __future__ import annotations

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_USER_RESPONSE = 18
NO_ANSWER = 19
CALL_REJECTED = 21

CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transit network",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    47: "Resource unavailable, unspecified",
    58: "Bearer capability not available",
    88: "Incompatible destination",
    102: "Recovery on timer expiry",
    127: "Interworking, unspecified",
}


def cause_text(code: int) -> str:
    return CAUSE_TEXT.get(code, f"Cause {code}")
