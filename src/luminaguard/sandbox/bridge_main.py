"""Runs inside the sandbox (as ``python3 -I -S``; stdlib only, no LuminaGuard imports).

Listens on 127.0.0.1:3128 in the sandbox's own network namespace and relays
each connection to the host-side egress proxy through the Unix socket bound
in at /.luminaguard/net/proxy.sock; then runs the command and exits with its
status. The command finds the proxy through HTTP_PROXY / HTTPS_PROXY.
"""

import contextlib
import os
import socket
import sys
import threading

SOCK = "/.luminaguard/net/proxy.sock"
PORT = 3128


def pump(src: socket.socket, dst: socket.socket) -> None:
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
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def relay(client: socket.socket) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(SOCK)
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)


def serve(listener: socket.socket) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client,), daemon=True).start()


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(64)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
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
