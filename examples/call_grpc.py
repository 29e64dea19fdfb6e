"""Calling Switchboard's gRPC API from your own service: a billing worker lists a user's threads.

Every call carries a bearer token in its metadata. A service of yours uses a service
token with the scopes it needs (here ``threads:read``); for development, mint one with

    switchboard token --service billing-worker --scope threads:read

(in production, sign them in your deployment with SWITCHBOARD_INTERNAL_SECRET; they live
5 minutes by default, so a long-running worker mints a new one before the old expires).
A service identity names the user it acts upon in the request's ``principal``.

    SWITCHBOARD_TOKEN=<token> python examples/call_grpc.py <user-id> [host:port]

Under TLS, open the channel with ``grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem))``
(and your client certificate and key under mutual TLS).
"""

from __future__ import annotations

import os
import sys

import grpc

from switchboard.api.v1 import common_pb2, thread_store_pb2
from switchboard.api.v1.thread_store_pb2_grpc import ThreadStoreStub


def main() -> int:
    """List the user's threads, most recent first; exit 1 with the server's reason when refused."""
    if len(sys.argv) < 2 or not os.environ.get("SWITCHBOARD_TOKEN"):
        print(__doc__, file=sys.stderr)
        return 2
    user_id = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:50051"
    metadata = (("authorization", f"Bearer {os.environ['SWITCHBOARD_TOKEN']}"),)
    with grpc.insecure_channel(target) as channel:
        stub = ThreadStoreStub(channel)
        request = thread_store_pb2.ListThreadsRequest(principal=common_pb2.Principal(user_id=user_id), limit=20)
        try:
            reply = stub.ListThreads(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            print(f"refused: {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    for thread in reply.threads:
        print(thread.id, thread.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
