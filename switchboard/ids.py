"""Ids of every object Switchboard makes: a short prefix and 96 random bits.

ChatKit's default ids carry 32 random bits: about even odds of a collision by
77,000 threads, and a collision fails a write. 96 bits make one unlikely for as
long as anyone keeps data.
"""

from __future__ import annotations

import secrets

RANDOM_BYTES = 12  # 96 bits

# ChatKit's own prefixes, so ids read the same as the SDK's.
PREFIXES = {
    "thread": "thr",
    "message": "msg",
    "tool_call": "tc",
    "workflow": "wf",
    "task": "tsk",
    "attachment": "atc",
    "sdk_hidden_context": "shcx",
}


def new_id(kind: str) -> str:
    """A new id of an object kind (a ChatKit store item type, or a prefix of our own)."""
    return f"{PREFIXES.get(kind, kind)}_{secrets.token_hex(RANDOM_BYTES)}"
