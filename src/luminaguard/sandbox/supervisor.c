/*
 * Runs inside a warm sandbox: the compiled twin of supervisor_main.py, which
 * is used where no C compiler is (the protocol is in that file). Compiled
 * statically at first use (luminaguard/sandbox/native.py), because an exec
 * from a small static process is cheaper than one from a Python interpreter:
 * about 1 ms on the host, 10-15 ms in gVisor, where tearing an interpreter's
 * address space down is slow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REQUEST 65536
#define MAX_ARGS MAX_REQUEST

static char request[MAX_REQUEST + 1];
static char *args[MAX_ARGS + 1];

static int fail(const char *why) {
    fprintf(stderr, "luminaguard supervisor: %s\n", why);
    return 2;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return fail("usage: supervisor CONTROL_FD READY_FD");
    int control = atoi(argv[1]), ready = atoi(argv[2]);
    if (write(ready, "R", 1) != 1)
        return fail("cannot say it is ready");
    close(ready);
    size_t used = 0;
    for (;;) {
        ssize_t n = read(control, request + used, MAX_REQUEST - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("cannot read the request");
        if (n == 0)
            break;
        used += (size_t)n;
        if (used == MAX_REQUEST)
            return fail("the request is too long");
    }
    close(control);
    if (used == 0)
        return 0; /* released unused */
    /* "N\n", then N arguments, each ending in a NUL byte, then nothing. */
    char *end = request + used, *p;
    long count = strtol(request, &p, 10);
    if (p == request || *p != '\n' || count < 1 || count > MAX_ARGS)
        return fail("a malformed request");
    p++;
    for (long i = 0; i < count; i++) {
        char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL)
            return fail("a malformed request");
        args[i] = p;
        p = nul + 1;
    }
    if (p != end)
        return fail("a malformed request");
    args[count] = NULL;
    execvp(args[0], args);
    int err = errno;
    fprintf(stderr, "%s: %s\n", args[0], strerror(err));
    return err == ENOENT ? 127 : 126;
}
