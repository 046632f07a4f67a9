"""Runs inside a warm sandbox (as ``python3 -I -S``; stdlib only).

Started ahead of need, it says it is ready (one byte, ``R``) on the fd in
argv[2], then reads one request from the fd in argv[1], up to its end of
file: ``N\\n`` and then the command's N arguments, each ending in a NUL byte.
It replaces itself with that command: the command then has the sandbox's
stdin, stdout and stderr, and its exit status is the sandbox's. One
request, then gone: a warm sandbox serves one command only.

``supervisor.c`` is the same program, compiled; this one is used where no
C compiler is.
"""

import os
import sys

fd = int(sys.argv[1])
ready = int(sys.argv[2])
os.write(ready, b"R")
os.close(ready)
data = b""
while chunk := os.read(fd, 65536):
    data += chunk
os.close(fd)
if not data:
    os._exit(0)  # released unused
count, _, rest = data.partition(b"\n")
argv = rest.split(b"\0")
if not count.isdigit() or argv[-1] != b"" or len(argv) != int(count) + 1 or len(argv) < 2:
    sys.stderr.write("luminaguard supervisor: a malformed request\n")
    os._exit(2)
argv.pop()
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"{os.fsdecode(argv[0])}: {exc.strerror}\n")
    sys.stderr.flush()
    os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
