"""The host end of a long-lived process in a micro-VM (an MCP server), as
its client starts it: ``python3 -I -S relay_main.py SOCKET`` (stdlib only).

Its stdin and stdout are relayed, as they are, over a Unix socket to the
LuminaGuard process that runs the guest (``MicrovmSandbox.process``), which
turns them into the guest agent's frames. It ends when the guest's command
does (the socket closes) or when its own stdin ends.
"""

import os
import socket
import sys
import threading

conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(sys.argv[1])


def up() -> None:
    try:
        while data := os.read(0, 65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass


threading.Thread(target=up, daemon=True).start()
try:
    while data := conn.recv(65536):
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]
except OSError:
    pass
