"""What shell commands do, as data: the tables the shell classifier reads.

Each table entry says what a command is and why it sits at its level. Kept
apart from the parser so the rules can be read (and reviewed) on their own.
"""

from __future__ import annotations

# Commands that only read or print, whatever their arguments (flags that make
# some of them write are checked in WRITE_FLAGS below).
READ_ONLY = frozenset(
    """
    ls ll la dir vdir cat tac head tail less more wc grep egrep fgrep rg ag ack find fd locate
    echo printf pwd stat file du df tree which whereis type command hash whoami id groups date cal
    uname hostname basename dirname realpath readlink sort uniq cut tr diff diff3 cmp comm
    md5sum sha1sum sha256sum sha512sum b2sum cksum sum true false test [ jq yq xxd od hexdump
    strings nl column fold fmt expand unexpand paste join rev seq expr sleep wait ps top free
    uptime lsof env printenv tty nproc getconf locale sed awk gawk mawk nawk cd pushd popd dirs
    export declare local readonly unset set shift alias unalias let history help man info
    base64 base32 iconv numfmt factor yes tput clear zcat zless zgrep bzcat xzcat lscpu lsblk
    """.split()
)

# Flags that turn an otherwise read-only command into one that writes.
WRITE_FLAGS: dict[str, tuple[str, ...]] = {
    "sed": ("-i", "--in-place"),
    "sort": ("-o", "--output"),
    "find": ("-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls"),
    "fd": ("-x", "--exec", "-X", "--exec-batch"),
    "yq": ("-i", "--inplace"),
    "base64": ("-o", "--output"),
}

# Commands whose first positional argument is a pattern or program, not a path.
PATTERN_FIRST = frozenset("grep egrep fgrep rg ag ack sed awk gawk mawk nawk jq yq expr test [".split())

# Commands whose arguments are text, not paths.
TEXT_ARGS = frozenset("echo printf export declare local readonly unset set alias let help man info yes tput seq expr factor numfmt".split())

NETWORK = frozenset(
    """
    curl wget ssh scp sftp rsync nc ncat netcat socat telnet ftp tftp ping ping6 dig nslookup host
    traceroute tracepath mtr http https xh aria2c lynx w3m links gh glab hub aws gcloud gsutil az
    kubectl helm terraform tofu pulumi ansible ansible-playbook heroku vercel netlify fly flyctl
    docker podman nerdctl ctr crictl vagrant mosh rclone s3cmd smbclient mail sendmail mutt
    openssl websocat grpcurl
    """.split()
)

PRIVILEGE = frozenset("sudo su doas pkexec runuser setpriv capsh chroot nsenter unshare newgrp sg setcap".split())

PROCESS_CONTROL = frozenset("kill pkill killall xkill renice skill slay".split())

SYSTEM_ADMIN = frozenset(
    """
    systemctl service journalctl mount umount reboot shutdown halt poweroff init telinit iptables
    ip6tables nft ufw firewall-cmd ifconfig route ip iw useradd userdel usermod groupadd groupdel
    passwd chpasswd chage visudo crontab at atq batch modprobe insmod rmmod depmod sysctl mkfs
    mkswap fdisk sfdisk parted gdisk losetup swapon swapoff launchctl chattr setfacl quotacheck
    update-alternatives dpkg rpm snap flatpak grub-install efibootmgr hwclock timedatectl
    hostnamectl loginctl
    """.split()
)

PACKAGE_MANAGERS = frozenset(
    "apt apt-get aptitude dnf yum zypper apk pacman brew port pkg conda mamba micromamba pipx gem "
    "cpan cpanm composer bundle bundler".split()
)
# Sub-commands (after the manager's name) that only read.
PACKAGE_READS: dict[str, frozenset[str]] = {
    "pip": frozenset("list show freeze check help --version -V inspect".split()),
    "npm": frozenset("ls list help --version -v root bin prefix explain why config get".split()),
    "yarn": frozenset("list info help --version why".split()),
    "pnpm": frozenset("list ls help --version why".split()),
    "uv": frozenset("--version help tree".split()),
    "poetry": frozenset("show check --version help".split()),
    "cargo": frozenset("--version -V metadata tree help".split()),
    "go": frozenset("version env help list doc".split()),
}
# Sub-commands that fetch or install (the rest of those tools run project code).
PACKAGE_INSTALLS: dict[str, frozenset[str]] = {
    "pip": frozenset("install uninstall download wheel".split()),
    "npm": frozenset("install i ci add update up upgrade publish exec x create init link unlink uninstall remove rm dedupe audit outdated view info".split()),
    "yarn": frozenset("install add upgrade up remove publish dlx create global".split()),
    "pnpm": frozenset("install i add update up remove rm publish dlx create exec".split()),
    "uv": frozenset("pip add remove sync lock tool init venv python".split()),
    "poetry": frozenset("add remove install update lock publish".split()),
    "cargo": frozenset("install publish add remove update fetch search login yank".split()),
    "go": frozenset("get install mod".split()),
}
NETWORKED_RUNNERS = frozenset("npx bunx pnpx uvx pipx".split())

# Interpreters and shells, and the flag each takes for inline code.
SHELLS = frozenset("sh bash dash zsh ksh mksh fish ash busybox".split())
INTERPRETERS: dict[str, tuple[str, ...]] = {
    "python": ("-c",), "python3": ("-c",), "python2": ("-c",), "pypy": ("-c",), "pypy3": ("-c",),
    "node": ("-e", "--eval", "-p", "--print"), "nodejs": ("-e", "--eval", "-p", "--print"),
    "deno": ("eval",), "bun": ("-e", "--eval"),
    "perl": ("-e", "-E"), "ruby": ("-e",), "php": ("-r",), "lua": ("-e",), "Rscript": ("-e",),
    "osascript": ("-e",), "tclsh": (), "awk": (),
}  # fmt: skip
# Words in inline code that suggest it reaches the network or starts programs.
INLINE_NETWORK_HINTS = (
    "socket", "urllib", "requests", "http", "fetch(", "subprocess", "os.system", "child_process",
    "Net::", "open-uri", "curl", "wget",
)  # fmt: skip

# Wrappers: run the next word as the command.
WRAPPERS = frozenset("command builtin exec nice nohup time timeout stdbuf ionice xargs env chrt taskset caffeinate".split())
# Wrappers that take a leading numeric or option argument before the command.
WRAPPER_ARGS = {"timeout": 1, "chrt": 1, "taskset": 1}

DYNAMIC = frozenset("eval source .".split())

# Commands that create or change files; the level depends on their targets.
FILE_WRITERS = frozenset(
    "rm rmdir mv cp touch mkdir ln chmod chown chgrp truncate shred install patch unlink mkfifo "
    "mknod tar unzip zip gzip gunzip bzip2 bunzip2 xz unxz 7z split csplit tee dd rsync_local".split()
)
CREATES_ONLY = frozenset("mkdir mkfifo".split())
DESTRUCTIVE = frozenset("rm rmdir unlink shred truncate mv chmod chown chgrp".split())

# Build and test tools: they run project code (ORANGE), never read-only.
RUNS_PROJECT_CODE = frozenset(
    "make cmake ninja meson bazel pytest tox nox unittest mvn gradle ant sbt mix rebar3 dotnet "
    "gcc cc c++ g++ clang clang++ rustc javac tsc esbuild webpack vite rollup jest vitest mocha "
    "eslint prettier black isort ruff mypy pyright flake8 pylint rustfmt gofmt jupyter ipython".split()
)
# Those of them that only check when given these flags.
CHECK_ONLY_FLAGS: dict[str, tuple[str, ...]] = {
    "prettier": ("--check", "-c", "--list-different", "-l"),
    "black": ("--check", "--diff"),
    "isort": ("--check", "--check-only", "--diff", "-c"),
    "ruff": ("--check", "--diff"),
    "rustfmt": ("--check",),
    "gofmt": ("-l", "-d"),
}

GIT_READ = frozenset(
    "status log diff show rev-parse ls-files ls-tree blame grep describe shortlog reflog cat-file "
    "help version whatchanged show-ref for-each-ref name-rev merge-base count-objects fsck "
    "check-ignore check-attr var annotate show-branch cherry range-diff".split()
)
GIT_REMOTE = frozenset("push fetch pull clone ls-remote send-email request-pull archive svn p4 remote-ext".split())

# Paths that are fine to name although they are not in the workspace.
HARMLESS_PATHS = ("/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/urandom", "/dev/random", "/dev/fd/")
# The sandbox's own /tmp is private and thrown away with it.
SANDBOX_PRIVATE = ("/tmp/", "/tmp")

CREDENTIAL_PATTERNS = (
    "~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gcloud", "~/.kube", "~/.docker", "~/.netrc",
    "~/.npmrc", "~/.pypirc", "~/.git-credentials", "~/.config/gh", "~/.azure", "~/.password-store",
    "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/etc/ssh", "/var/run/docker.sock",
    "/run/docker.sock", "/proc/self/environ", "/proc/1/environ",
)  # fmt: skip
