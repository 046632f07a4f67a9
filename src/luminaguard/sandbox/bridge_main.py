"""Runs inside the sandbox (as ``python3 -I -S``; stdlib only, no LuminaGuard imports).

Listens on 127.0.0.1:3128 in the sandbox's own network namespace and relays
each connection to the host-side egress proxy through the Unix socket bound
in at /.luminaguard/net/proxy.sock; then runs the command and exits with its
status. The command finds the proxy through HTTP_PROXY / HTTPS_PROXY.

The command starts only once this listens, so its start-up is on every
preview's path: the C modules ``_socket`` and ``_thread`` instead of
``socket`` and ``threading`` (whose imports, enum and selectors among them,
cost more than the interpreter itself).
"""

import _socket
import _thread
import os
import sys

SOCK = "/.luminaguard/net/proxy.sock"
PORT = 3128


def pump(src: _socket.socket, dst: _socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:  # noqa: SIM105 (contextlib costs an import here)
                s.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass


def relay(client: _socket.socket) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(SOCK)
    except OSError:
        client.close()
        return
    _thread.start_new_thread(pump, (upstream, client))
    pump(client, upstream)


def serve(listener: _socket.socket) -> None:
    while True:
        fd, _ = listener._accept()  # type: ignore[attr-defined]  # the C socket returns an fd
        _thread.start_new_thread(relay, (_socket.socket(fileno=fd),))


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(64)
    _thread.start_new_thread(serve, (listener,))
    pid = os.fork()
    if pid == 0:
        listener.close()
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"{argv[0]}: {exc.strerror}\n")
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    os._exit(
        os.waitstatus_to_exitcode(status) & 0xFF
        if os.WIFEXITED(status)
        else 128 + os.WTERMSIG(status)
    )


main()
