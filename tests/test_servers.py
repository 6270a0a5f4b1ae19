"""The tests' server harness (tests/servers.py): a start-up failure of the machine's, named by
``restart_if``, is retried once; any other exit still fails at once, with the log's tail."""

from __future__ import annotations

import sys
import textwrap

import pytest

from tests.servers import ServerProcess, free_port

#: Fails (like Ray's node start-up on a loaded machine) while ``marker`` does not exist, then serves /ping.
FLAKY = textwrap.dedent(
    """
    import http.server, pathlib, sys
    marker, port, message = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if not marker.exists():
        marker.write_text("failed once")
        print(message, flush=True)
        sys.exit(1)

    class Ping(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Ping).serve_forever()
    """
)


def _server(tmp_path, message: str, **kwargs) -> ServerProcess:
    port = free_port()
    return ServerProcess(
        [sys.executable, "-c", FLAKY, str(tmp_path / "marker"), str(port), message],
        f"http://127.0.0.1:{port}/ping",
        log_path=tmp_path / "server.log",
        timeout=30,
        **kwargs,
    )


def test_a_named_start_up_failure_is_retried_and_the_server_then_answers(tmp_path):
    with _server(tmp_path, "The current node timed out during startup.", restart_if="timed out during startup") as server:
        assert server.proc.poll() is None
    log = (tmp_path / "server.log").read_text()
    assert log.count("timed out during startup") == 2 and "--- restarted after" in log  # the failure, then the note


def test_any_other_exit_fails_at_once_naming_the_log(tmp_path):
    with pytest.raises(RuntimeError, match="exited with 1:\\n.*address already in use"):
        with _server(tmp_path, "address already in use", restart_if="timed out during startup"):
            pass
    assert (tmp_path / "marker").exists()  # it ran once and was not started again


def test_without_restart_if_the_named_failure_is_not_retried(tmp_path):
    with pytest.raises(RuntimeError, match="timed out during startup"):
        with _server(tmp_path, "The current node timed out during startup."):
            pass
