/*
 * The micro-VM's guest agent: PID 1's last act is to exec this, on the
 * virtio-serial port that is its only link to the host.
 *
 * Frames, both ways: one type byte, a 4-byte big-endian length, the payload.
 *
 *   host -> guest
 *     'P'  ping: answered with 'R' (after a snapshot restore: "am I alive?")
 *     'S'  seed: bytes mixed into the guest's random pool, credited (a
 *          restored clone must not share its randomness with its siblings)
 *     'C'  command: NUL-terminated strings: options (key=value) up to an empty
 *          string, then argv up to an empty string, then the environment
 *     'I'  stdin bytes for the running command; empty: end of its stdin
 *     'K'  kill the running command's process group
 *   guest -> host
 *     'R'  ready
 *     'O'  stdout bytes, 'E' stderr bytes
 *     'X'  the command is done: a 4-byte big-endian status as a shell
 *          reports it (the exit code, or 128 + the signal)
 *     'F'  the command could not start: the reason as text, then 'X' 127/126
 *
 * Options: chroot=DIR cwd=DIR uid=N gid=N, rlimit_{as,cpu,fsize,nofile,
 * nproc,core}=N, output_limit=N (bytes of stdout and of stderr forwarded;
 * the rest is read and dropped), seccomp=FILE (a classic BPF program, the
 * host's own sandbox filter, loaded with no_new_privs just before exec).
 * The command `lg-opaque DIR` is built in: it lists the directories under DIR
 * that overlayfs marked opaque (a preview's replaced directories).
 * One command at a time. Built static at image-build time
 * (`luminaguard vm build-image`): it needs nothing in the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <linux/filter.h>
#include <linux/random.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/xattr.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_FRAME (16 * 1024 * 1024)

static int port = -1;

static void write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                struct pollfd pf = {fd, POLLOUT, 0};
                poll(&pf, 1, 100);
                continue;
            }
            _exit(2);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_frame(char type, const void *data, uint32_t len) {
    unsigned char head[5] = {(unsigned char)type, len >> 24, len >> 16, len >> 8, len};
    write_all(port, head, 5);
    if (len)
        write_all(port, data, len);
}

static int read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {fd, POLLIN, 0};
                poll(&pf, 1, -1);
                continue;
            }
            return -1;
        }
        if (r == 0) {
            /* No host on the other end (yet): wait for one. */
            struct pollfd pf = {fd, POLLIN, 0};
            poll(&pf, 1, 100);
            continue;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One frame from the host; the payload is malloc'd (NUL-terminated). */
static int read_frame(char *type, char **data, uint32_t *len) {
    unsigned char head[5];
    if (read_all(port, head, 5) < 0)
        return -1;
    *type = (char)head[0];
    *len = ((uint32_t)head[1] << 24) | ((uint32_t)head[2] << 16) | ((uint32_t)head[3] << 8) | head[4];
    if (*len > MAX_FRAME)
        return -1;
    *data = malloc(*len + 1);
    if (!*data)
        return -1;
    if (*len && read_all(port, *data, *len) < 0)
        return -1;
    (*data)[*len] = 0;
    return 0;
}

static void seed(const char *data, uint32_t len) {
    struct {
        int count;
        int size;
        unsigned char buf[256];
    } entropy;
    if (len > sizeof entropy.buf)
        len = sizeof entropy.buf;
    entropy.count = (int)len * 8;
    entropy.size = (int)len;
    memcpy(entropy.buf, data, len);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ioctl(fd, RNDADDENTROPY, &entropy);
        /* Added entropy reaches /dev/urandom only at the next reseed (up to a
         * minute away): every clone of a snapshot would draw the same bytes
         * until then. Reseed now. */
        ioctl(fd, RNDRESEEDCRNG);
        close(fd);
    }
}

static void set_limit(int which, const char *value) {
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = strtoull(value, NULL, 10);
    setrlimit(which, &rl);
}

static struct sock_filter filter[4096];
static unsigned short filter_len = 0;

/* Read before the fork: the child of a vfork must not allocate or read files. */
static int load_filter(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, filter, sizeof filter);
    close(fd);
    if (n <= 0 || n % (ssize_t)sizeof filter[0])
        return -1;
    filter_len = (unsigned short)(n / (ssize_t)sizeof filter[0]);
    return 0;
}

static int opaque_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    char value[4];
    if (flag == FTW_D && getxattr(path, "trusted.overlay.opaque", value, sizeof value) > 0 &&
        value[0] == 'y')
        printf("%s\n", path);
    return 0;
}

/* Runs in the child: apply the options, then exec. */
static void start(char **opts, char **argv, char **envp, int errpipe) {
    const char *root = NULL, *cwd = "/";
    int use_filter = 0;
    long uid = -1, gid = -1;
    for (char **o = opts; *o; o++) {
        char *eq = strchr(*o, '=');
        if (!eq)
            continue;
        *eq = 0;
        const char *k = *o, *v = eq + 1;
        if (!strcmp(k, "chroot")) root = v;
        else if (!strcmp(k, "cwd")) cwd = v;
        else if (!strcmp(k, "uid")) uid = atol(v);
        else if (!strcmp(k, "gid")) gid = atol(v);
        else if (!strcmp(k, "rlimit_as")) set_limit(RLIMIT_AS, v);
        else if (!strcmp(k, "rlimit_cpu")) set_limit(RLIMIT_CPU, v);
        else if (!strcmp(k, "rlimit_fsize")) set_limit(RLIMIT_FSIZE, v);
        else if (!strcmp(k, "rlimit_nofile")) set_limit(RLIMIT_NOFILE, v);
        else if (!strcmp(k, "rlimit_nproc")) set_limit(RLIMIT_NPROC, v);
        else if (!strcmp(k, "rlimit_core")) set_limit(RLIMIT_CORE, v);
        else if (!strcmp(k, "seccomp")) use_filter = 1;
    }
    const char *step = "chroot";
    if (root && chroot(root) < 0)
        goto fail;
    step = "chdir";
    if (chdir(cwd) < 0)
        goto fail;
    step = "setgid";
    if (gid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)gid) < 0))
        goto fail;
    /* A command run as a user gets an empty bounding set: nothing it runs can
     * gain a capability. (The agent's own set-up commands stay root's.) */
    for (int cap = 0; uid >= 0 && cap < 64; cap++)
        prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    step = "setuid";
    if (uid >= 0 && setuid((uid_t)uid) < 0)
        goto fail;
    step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        goto fail;
    if (use_filter) {
        struct sock_fprog prog = {filter_len, filter};
        step = "seccomp";
        if (filter_len == 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
            goto fail;
    }
    if (!strcmp(argv[0], "lg-opaque")) {
        int failed = argv[1] ? nftw(argv[1], opaque_entry, 16, FTW_PHYS) : -1;
        fflush(stdout);
        _exit(failed ? 1 : 0);
    }
    execvpe(argv[0], argv, envp);
    step = argv[0];
fail:;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s: %s\n", step, strerror(errno));
    write_all(errpipe, msg, (size_t)n);
    _exit(errno == ENOENT ? 127 : 126);
}

/* Splits a 'C' payload into options, argv and environment. */
static void split(char *data, uint32_t len, char ***opts, char ***argv, char ***envp) {
    char **lists[3];
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        lists[i] = calloc(len + 2, sizeof(char *));
    int which = 0;
    char *p = data, *end = data + len;
    while (p < end && which < 3) {
        size_t n = strnlen(p, (size_t)(end - p));
        if (n == 0 && which < 2) {
            which++;
        } else if (n > 0) {
            lists[which][counts[which]++] = p;
        }
        p += n + 1;
    }
    *opts = lists[0];
    *argv = lists[1];
    *envp = lists[2];
}

static void run(char *data, uint32_t len) {
    char **opts, **argv, **envp;
    split(data, len, &opts, &argv, &envp);
    unsigned long long limit = 1ULL << 62, sent[3] = {0, 0, 0}; /* no limit given: none */
    for (char **o = opts; *o; o++) {
        if (!strncmp(*o, "output_limit=", 13))
            limit = strtoull(*o + 13, NULL, 10);
        if (!strncmp(*o, "seccomp=", 8) && load_filter(*o + 8) < 0) {
            const char *msg = "the seccomp filter could not be read\n";
            send_frame('F', msg, (uint32_t)strlen(msg));
            uint32_t status = htonl(126);
            send_frame('X', &status, 4);
            return;
        }
    }
    if (!argv[0]) {
        const char *msg = "empty command\n";
        send_frame('F', msg, (uint32_t)strlen(msg));
        uint32_t status = htonl(126);
        send_frame('X', &status, 4);
        return;
    }
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        _exit(3);
    /* vfork: no page tables copied (under TCG a fork's copy-on-write faults
     * cost milliseconds). The child only sets itself up and execs; we wait. */
    pid_t pid = vfork();
    if (pid == 0) {
        setsid();
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        signal(SIGPIPE, SIG_DFL); /* the child's own disposition, not ours */
        start(opts, argv, envp, 2);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    int stdin_fd = in[1];
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    /* The command's exit wakes the poll below through a pidfd (Linux 5.3+):
     * no timer is needed to notice it. Without one, poll every 10 ms. */
    int exited = (int)syscall(SYS_pidfd_open, pid, 0);
    int open_out = 1, open_err = 1, status = -1;
    static char buf[65536];
    while (open_out || open_err || status < 0) {
        struct pollfd fds[4] = {{port, POLLIN, 0}, {open_out ? out[0] : -1, POLLIN, 0},
                                {open_err ? err[0] : -1, POLLIN, 0},
                                {status < 0 ? exited : -1, POLLIN, 0}};
        int timeout = (open_out || open_err || exited >= 0) ? -1 : 10;
        if (poll(fds, 4, timeout) < 0 && errno != EINTR)
            break;
        for (int i = 1; i <= 2; i++) {
            if (fds[i].fd >= 0 && fds[i].revents) {
                ssize_t r = read(fds[i].fd, buf, sizeof buf);
                if (r > 0) {
                    /* Up to the limit and one byte past it (so the host
                     * knows there was more); the rest is dropped here. */
                    unsigned long long room = limit + 1 > sent[i] ? limit + 1 - sent[i] : 0;
                    uint32_t n = (uint32_t)((unsigned long long)r < room ? (unsigned long long)r : room);
                    if (n)
                        send_frame(i == 1 ? 'O' : 'E', buf, n);
                    sent[i] += n;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (i == 1) open_out = 0; else open_err = 0;
                }
            }
        }
        if (fds[0].revents & POLLIN) {
            char type;
            char *frame;
            uint32_t n;
            if (read_frame(&type, &frame, &n) < 0)
                _exit(4);
            if (type == 'I') {
                if (n == 0 && stdin_fd >= 0) {
                    close(stdin_fd);
                    stdin_fd = -1;
                } else if (stdin_fd >= 0) {
                    /* A command that stops reading must not wedge the agent. */
                    signal(SIGPIPE, SIG_IGN);
                    if (write(stdin_fd, frame, n) < 0) {
                        close(stdin_fd);
                        stdin_fd = -1;
                    }
                }
            } else if (type == 'K') {
                kill(-pid, SIGKILL);
            } else if (type == 'P') {
                send_frame('R', NULL, 0);
            }
            free(frame);
        }
        /* Reap the command and any orphans re-parented to us (we are PID 1)
         * in one loop: a separate waitpid(pid) before it left a window in
         * which the command exited and was reaped here as an orphan, its
         * status lost, and this loop spun on the readable pidfd for ever. */
        int ws;
        pid_t done;
        while ((done = waitpid(-1, &ws, WNOHANG)) > 0) {
            if (done == pid)
                status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        }
    }
    if (stdin_fd >= 0)
        close(stdin_fd);
    if (exited >= 0)
        close(exited);
    close(out[0]);
    close(err[0]);
    /* Whatever the command left behind goes with it. */
    kill(-pid, SIGKILL);
    uint32_t be = htonl((uint32_t)status);
    send_frame('X', &be, 4);
    free(opts);
    free(argv);
    free(envp);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: agent PORT\n");
        return 2;
    }
    port = open(argv[1], O_RDWR | O_CLOEXEC);
    if (port < 0) {
        perror(argv[1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    send_frame('R', NULL, 0);
    for (;;) {
        char type;
        char *data;
        uint32_t len;
        if (read_frame(&type, &data, &len) < 0)
            return 4;
        if (type == 'P')
            send_frame('R', NULL, 0);
        else if (type == 'S')
            seed(data, len);
        else if (type == 'C')
            run(data, len);
        free(data);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
}
