"""Handler of ``switchboard webhooks`` (declared in ``switchboard.cli``).

It calls session_api's webhook RPCs as an operator of ``--org``, with service
tokens minted from ``SWITCHBOARD_INTERNAL_SECRET`` (or the file ``up`` keeps in
its data directory), or with the bearer token in ``SWITCHBOARD_TOKEN`` (an
operator's token, or a service token with the scope ``webhooks:admin``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from services.session_api.client import SessionApiClient
from services.session_api.webhooks import generate_secret
from switchboard.config import env_str
from switchboard.errors import InvalidArgument
from switchboard.principal import Principal

CLI_USER = "switchboard-cli"


def _use_up_secret() -> None:
    """Under ``switchboard up`` the internal key is a file in the data dir; use it when the variable is unset."""
    if env_str("SWITCHBOARD_INTERNAL_SECRET") or env_str("SWITCHBOARD_TOKEN"):
        return
    kept = Path(env_str("SWITCHBOARD_DATA_DIR", ".switchboard") or ".switchboard") / "internal-secret"
    if kept.exists():
        os.environ["SWITCHBOARD_INTERNAL_SECRET"] = kept.read_text().strip()


def webhooks_command(args: argparse.Namespace) -> int:
    """``switchboard webhooks add|list|remove|test|deliveries|redeliver|secret``."""
    if args.action == "secret":
        print(generate_secret())
        return 0
    if not args.org:
        raise InvalidArgument("name the org whose webhooks these are: --org ORG")
    _use_up_secret()
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    client = SessionApiClient(args.session_api)
    operator = Principal.create(user_id=CLI_USER, org_id=args.org, roles=["operator"])
    try:
        return await _act(client, operator, args)
    finally:
        await client.close()


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise InvalidArgument(f"this action needs {flag}")
    return value


async def _act(client: SessionApiClient, operator: Principal, args: argparse.Namespace) -> int:
    org = args.org
    if args.action == "add":
        endpoint = await client.add_webhook_endpoint(
            operator,
            org_id=org,
            url=_need(args.url, "--url URL"),
            event_types=args.event,
            description=args.description,
            secret=args.secret or "",
        )
        print(f"added {endpoint.id} -> {endpoint.url} ({', '.join(endpoint.event_types) or 'every event'})")
        print("its signing secret (shown once; verify webhook-signature with it):", file=sys.stderr)
        print(endpoint.secret)
    elif args.action == "list":
        endpoints = await client.list_webhook_endpoints(operator, org_id=org)
        if not endpoints:
            print(f"org {org!r} has no webhook endpoints; add one with `switchboard webhooks add`", file=sys.stderr)
        for e in endpoints:
            types = ",".join(e.event_types) or "*"
            print(f"{e.id}\t{e.url}\t{types}\t{e.description}")
    elif args.action == "remove":
        await client.remove_webhook_endpoint(operator, _need(args.endpoint, "--endpoint ID"), org_id=org)
        print(f"removed {args.endpoint}")
    elif args.action == "test":
        event_id = await client.test_webhook_endpoint(operator, _need(args.endpoint, "--endpoint ID"), org_id=org)
        print(f"queued webhook.test {event_id}; `switchboard webhooks deliveries --endpoint {args.endpoint}` shows it")
    elif args.action == "deliveries":
        deliveries, _more = await client.list_webhook_deliveries(
            operator, _need(args.endpoint, "--endpoint ID"), org_id=org, status=args.status or "", limit=args.limit
        )
        for d in deliveries:
            last = d.attempt_list[-1] if d.attempt_list else None
            answer = "" if last is None else (str(last.status_code) if last.status_code else last.error)
            print(f"{d.event_id}\t{d.type}\t{d.status}\t{d.attempts} attempts\t{answer}")
    elif args.action == "redeliver":
        count = await client.redeliver_webhooks(
            operator, _need(args.endpoint, "--endpoint ID"), org_id=org, event_id=args.event_id or ""
        )
        print(f"{count} deliveries due again")
    return 0
