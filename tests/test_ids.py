"""Every id Switchboard makes carries 96 random bits (ChatKit's default carries 32)."""

from __future__ import annotations

from datetime import UTC, datetime

from chatkit.types import ThreadMetadata

from services.thread_store.client import GrpcThreadStore
from switchboard.ids import new_id
from switchboard.principal import Principal


def test_store_ids_keep_chatkits_prefixes_and_carry_ninety_six_random_bits() -> None:
    store = GrpcThreadStore("127.0.0.1:1")  # no call is made
    caller = Principal(user_id="alice")
    thread = ThreadMetadata(id="thr_x", created_at=datetime.now(UTC))
    ids = [
        store.generate_thread_id(caller),
        store.generate_item_id("message", thread, caller),
        store.generate_item_id("sdk_hidden_context", thread, caller),
        store.generate_attachment_id("image/png", caller),
    ]
    prefixes = [i.split("_")[0] for i in ids]
    assert prefixes == ["thr", "msg", "shcx", "atc"]
    assert all(len(i.split("_", 1)[1]) == 24 for i in ids)  # 12 bytes in hex
    many = {new_id("message") for _ in range(10_000)}
    assert len(many) == 10_000
