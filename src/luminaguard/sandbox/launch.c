/* launch: how a sandbox's first process starts on the host (launcher.py).

   Usage: launch CTL PROCS...

   Started before its command is known, it first moves itself into the
   cgroups whose cgroup.procs files are named (on cgroup v1 the first move
   after a quiet spell waits out an RCU grace period, 5-15 ms: paid here,
   ahead of time). Then it reads what to run from descriptor CTL, up to EOF,
   as NUL-terminated records, applied in this order whatever their order:

     R<resource>=<limit>   setrlimit, soft and hard (resource numbers are Linux's)
     C<fd>                 close this descriptor (bwrap data it is not given)
     N<path>               setns into this mount namespace
     G<gid> / U<uid>       drop supplementary groups, setgid, then setuid
     A<arg>                the command line, in order (the first is a path)
     E<name=value>         the environment (nothing else is inherited)

   and execs. EOF with no A record is a launcher not needed: exit 0. Any
   failure exits 125 (127: the exec itself) with one line on stderr, before
   anything has run. Only its parent writes CTL: nothing here parses input
   from anyone else. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_BLOCK (16 << 20)
#define MAX_ITEMS 65536

static void die(const char *what, const char *detail) {
  fprintf(stderr, "luminaguard launch: %s%s%s: %s\n", what, detail ? " " : "",
          detail ? detail : "", strerror(errno));
  _exit(125);
}

static void join(const char *procs) {
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "0", 1) != 1) die("cannot join cgroup", procs);
  close(fd);
}

static char *read_all(int fd, size_t *len) {
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  if (!buf) die("out of memory", NULL);
  for (;;) {
    if (n == cap) {
      if (cap >= MAX_BLOCK) { errno = E2BIG; die("command block too large", NULL); }
      cap *= 2;
      if (!(buf = realloc(buf, cap))) die("out of memory", NULL);
    }
    ssize_t got = read(fd, buf + n, cap - n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) die("reading the command", NULL);
    if (got == 0) break;
    n += (size_t)got;
  }
  *len = n;
  return buf;
}

static long number(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end) { errno = EINVAL; die(what, s); }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2) { errno = EINVAL; die("usage: launch CTL PROCS...", NULL); }
  int ctl = (int)number(argv[1], "bad descriptor");
  for (int i = 2; i < argc; i++) join(argv[i]);

  size_t len;
  char *block = read_all(ctl, &len);
  close(ctl);
  if (len && block[len - 1] != '\0') { errno = EINVAL; die("unterminated record", NULL); }

  static char *args[MAX_ITEMS + 1], *env[MAX_ITEMS + 1];
  int nargs = 0, nenv = 0;
  const char *mountns = NULL;
  long uid = -1, gid = -1;
  for (size_t at = 0, next; at < len; at = next) {
    char *rec = block + at, kind = rec[0], *val = rec + (kind ? 1 : 0);
    next = at + strlen(rec) + 1;  /* before a record is cut in place (R) */
    if (nargs >= MAX_ITEMS || nenv >= MAX_ITEMS) { errno = E2BIG; die("too many records", NULL); }
    switch (kind) {
      case 'A': args[nargs++] = val; break;
      case 'E': env[nenv++] = val; break;
      case 'N': mountns = val; break;
      case 'U': uid = number(val, "bad uid"); break;
      case 'G': gid = number(val, "bad gid"); break;
      case 'C': close((int)number(val, "bad descriptor")); break;
      case 'R': {
        char *eq = strchr(val, '=');
        if (!eq) { errno = EINVAL; die("bad limit", val); }
        *eq = '\0';
        rlim_t v = (rlim_t)number(eq + 1, "bad limit");
        struct rlimit lim = {v, v};
        if (setrlimit((int)number(val, "bad limit"), &lim) != 0) die("setrlimit", val);
        break;
      }
      default: errno = EINVAL; die("unknown record", rec);
    }
  }
  if (nargs == 0) return 0;
  args[nargs] = NULL;
  env[nenv] = NULL;

  if (mountns) {
    int fd = open(mountns, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNS) != 0) die("cannot enter mount namespace", mountns);
    close(fd);
  }
  if (gid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0)) die("setgid", NULL);
  if (uid >= 0 && setuid((uid_t)uid) != 0) die("setuid", NULL);
  if (uid > 0 && setuid(0) == 0) { errno = EPERM; die("root could be regained", NULL); }

  execve(args[0], args, env);
  fprintf(stderr, "luminaguard launch: cannot run %s: %s\n", args[0], strerror(errno));
  _exit(127);
}
