"""``switchboard up`` under the mishaps of a developer's first hour: a taken port, a second stack, Ctrl-C while
starting, a child killed, ``up`` itself killed, a bad DATABASE_URL/REDIS_URL, a probe answered with garbage."""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from switchboard.stack import Child, healthy, probe_grpc, probe_http
from tests.conftest import free_port

SERVICE_PORTS = ("THREAD_STORE", "SESSION_API", "AGENT_RUNNER", "EDGE")


class Up:
    """A ``switchboard up`` process whose output is collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = self.process.poll() is not None
            found = next((line for line in list(self.lines) if re.search(pattern, line)), None)
            if found is not None:
                return found
            if exited:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}")

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def port(self, service: str) -> int:
        return int(self.env[f"SWITCHBOARD_{service}_PORT"])

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def stack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"), "SWITCHBOARD_LOG_LEVEL": "INFO"}
    for name in SERVICE_PORTS:
        env[f"SWITCHBOARD_{name}_PORT"] = str(free_port())
    # The services authenticate each other with a shared internal secret.
    env.setdefault("SWITCHBOARD_INTERNAL_SECRET", "stack-test-internal-secret-0123456789abcdef")
    env.update(extra)
    return env


@pytest.fixture
def up_processes() -> Iterator[list[Up]]:
    started: list[Up] = []
    yield started
    for up in started:
        for child in up.children():
            child.kill()
        up.kill()


def start_up(started: list[Up], env: dict[str, str]) -> Up:
    up = Up(env)
    started.append(up)
    return up


def gone(processes: list[psutil.Process], timeout: float) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not alive


def listeners(port: int) -> list[int]:
    return [
        c.pid or -1
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]


def run_up(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_taken_port_is_refused_naming_the_process_that_holds_it(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        done = run_up(stack_env(tmp_path, SWITCHBOARD_EDGE_PORT=str(port)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert time.monotonic() - started < 10
    assert f"port {port} (edge) is taken by pid {os.getpid()} (" in done.stderr
    assert "set SWITCHBOARD_EDGE_PORT to a free port" in done.stderr
    assert "Traceback" not in done.stderr
    assert "starting storage" not in done.stdout  # refused before anything started


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:{port}/test", "cannot connect to DATABASE_URL="),
        ("DATABASE_URL", "mysql://root@127.0.0.1/test", "is not a postgresql:// URL"),
        ("DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:{port}/test", "postgres:***@127.0.0.1"),
        ("REDIS_URL", "redis://127.0.0.1:{port}/0", "cannot reach REDIS_URL="),
        ("REDIS_URL", "http://127.0.0.1/0", "is not a Redis URL"),
    ],
)
def test_a_bad_or_unreachable_storage_url_is_one_line_with_the_next_step(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    url = value.format(port=free_port())
    done = run_up(stack_env(tmp_path, **{variable: url}))
    assert done.returncode == 2, done.stdout + done.stderr
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("switchboard up: ")
    assert says in errors[0]
    assert "unset it" in errors[0] or "fix" in errors[0]
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("moment", [r"==> starting storage", r"==> starting services", r"healthy on"])
def test_ctrl_c_while_starting_stops_everything_it_started(tmp_path: Path, up_processes: list[Up], moment: str) -> None:
    up = start_up(up_processes, stack_env(tmp_path))
    up.wait_for(moment)
    children = up.children()
    up.process.send_signal(signal.SIGINT)
    assert up.finish(timeout=30) == 130, up.output
    assert "interrupted while starting; everything it started is stopped" in up.output
    assert gone(children, timeout=5), [p.pid for p in children if p.is_running()]
    for service in SERVICE_PORTS:
        assert listeners(up.port(service)) == []


def test_a_killed_child_is_restarted_a_second_stack_is_refused_and_killing_up_leaves_no_orphans(
    tmp_path: Path, up_processes: list[Up]
) -> None:
    env = stack_env(tmp_path)
    up = start_up(up_processes, env)
    up.wait_for(r"^Switchboard is up\.")
    # Each child's lines carry its name.
    assert any(line.startswith("thread_store | ") for line in up.lines), up.output
    assert any(line.startswith("edge         | ") or line.startswith("agent_runner | ") for line in up.lines)

    # The same ports again: refused at once, naming the first stack's process.
    second = run_up(env)
    assert second.returncode == 2
    assert "switchboard.cli thread-store" in second.stderr
    assert "Switchboard is up" not in second.stdout

    (store,) = [p for p in up.children() if "thread-store" in p.cmdline()]
    store.kill()
    up.wait_for(r"^!! thread_store exited with code -9; restarting in")
    port = up.port("THREAD_STORE")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = [p.pid for p in up.children() if "thread-store" in p.cmdline()]
        if pids and pids[0] != store.pid and pids[0] in listeners(port) and probe_grpc(f"127.0.0.1:{port}"):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("thread_store was not restarted:\n" + up.output)

    children = up.children()
    assert len(children) == 4
    up.process.kill()  # no chance to clean up: the children must go by themselves
    up.process.wait()
    assert gone(children, timeout=15), [" ".join(p.cmdline()) for p in children if p.is_running()]


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_the_child_never_counts_as_the_child_being_healthy() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        assert probe_http(f"127.0.0.1:{port}")  # the port answers...
        child = Child("edge", "edge", port, http=True, process=bystander)
        assert not healthy(child)  # ...but not from the child
    finally:
        bystander.kill()
        bystander.wait()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("answer", [b"garbage\r\n\r\n", b"", b"HTTP/1.1 abc\r\n\r\n"])
def test_a_probe_answered_with_garbage_or_a_reset_is_not_healthy_and_never_raises(answer: bytes) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer_once() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1024)
            if answer:
                connection.sendall(answer)
            else:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        assert probe_http(f"127.0.0.1:{port}") is False
        assert probe_grpc(f"127.0.0.1:{free_port()}") is False  # nothing there
    finally:
        thread.join(timeout=5)
        listener.close()
