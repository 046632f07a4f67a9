"""Runs inside a warm sandbox (as ``python3 -I -S``; stdlib only).

Started ahead of need, it says it is ready on the fd in argv[2], then waits on the fd in argv[1] for one request, a JSON object
``{"argv": [...]}``, and replaces itself with that command: the command then
has the sandbox's stdin, stdout and stderr, and its exit status is the
sandbox's. One request, then gone: a warm sandbox serves one command only.
"""

import json
import os
import sys

fd = int(sys.argv[1])
ready = int(sys.argv[2])
os.write(ready, b"R")
os.close(ready)
data = b""
while not data.endswith(b"\n"):
    chunk = os.read(fd, 65536)
    if not chunk:
        os._exit(0)  # released unused
    data += chunk
os.close(fd)
argv = json.loads(data)["argv"]
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"{argv[0]}: {exc.strerror}\n")
    sys.stderr.flush()
    os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
