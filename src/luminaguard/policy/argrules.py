"""Arguments that turn a read-only command into one that writes, runs a
program or changes the system: one table, a reason and examples for each.

Each rule names the commands it applies to and a matcher over the command's
arguments (the text of each, or None where it is only known at run time); a
match adds its level and reason, and the strictest level wins. Every rule's
examples must be classified at least at its level under its rule id: that is
checked once, the first time the classifier runs (``check_examples``), so a
rule that stops matching its own examples fails loudly instead of silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from luminaguard.core.risk import Risk

Args = Sequence[str | None]
Matcher = Callable[[Args], str | None]
"""The offending argument (for the reason), or None when the rule does not apply."""


@dataclass(frozen=True)
class ArgRule:
    commands: frozenset[str]
    match: Matcher
    risk: Risk
    rule: str
    reason: str
    examples: tuple[str, ...]


def flag(*names: str) -> Matcher:
    """Any of ``names`` as an argument, `--name=value`, or (short) `-nVALUE`."""

    def m(args: Args) -> str | None:
        for a in args:
            if a is None:
                continue
            for n in names:
                if a == n or (n.startswith("--") and a.startswith(n + "=")):
                    return a
                if len(n) == 2 and not n.startswith("--") and a.startswith(n) and len(a) > 2:
                    return a
        return None

    return m


def short_bundle(letter: str, *, long: tuple[str, ...] = ()) -> Matcher:
    """``-<letter>`` alone or in a bundle of short flags (`-ni`), or a long form."""
    bundle = re.compile(rf"^-[A-Za-z]*{letter}")

    def m(args: Args) -> str | None:
        for a in args:
            if a is None:
                continue
            if (bundle.match(a) and not a.startswith("--")) or any(
                a == n or a.startswith(n + "=") or a.startswith(n) for n in long
            ):
                return a
        return None

    return m


def positionals(args: Args, takes_value: frozenset[str] = frozenset()) -> list[str | None]:
    out: list[str | None] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a is not None and a.startswith("-") and a != "-":
            skip = a in takes_value
            continue
        out.append(a)
    return out


def more_positionals_than(n: int, takes_value: frozenset[str] = frozenset()) -> Matcher:
    def m(args: Args) -> str | None:
        pos = positionals(args, takes_value)
        return str(pos[n]) if len(pos) > n else None

    return m


def both(a: Matcher, b: Matcher) -> Matcher:
    def m(args: Args) -> str | None:
        return b(args) if a(args) else None

    return m


AWK_VALUE = frozenset(["-v", "-F", "-f", "--assign", "--field-separator", "--file"])
AWK_RISKY = ("system(", "|", ">", "getline", "close(", "fflush(")


def awk_program(args: Args) -> str | None:
    if flag("-f", "--file")(args):
        return None  # the program is a file: see the -f rule
    pos = positionals(args, AWK_VALUE)
    if not pos:
        return None
    program = pos[0]
    if program is None:
        return "a program computed at run time"
    return next((k for k in AWK_RISKY if k in program), None)


SED_VALUE = frozenset(["-e", "-f", "--expression", "--file", "-l", "--line-length"])
# An address (line number, $, /regex/, with an optional range), then the command.
SED_COMMAND = re.compile(
    r"^\s*(?:(?:\d+|\$|/(?:[^/\\]|\\.)*/)(?:\s*,\s*(?:\d+|\$|/(?:[^/\\]|\\.)*/))?\s*!?\s*)?([wWeErR])"
)


def sed_scripts(args: Args) -> list[str | None]:
    scripts: list[str | None] = []
    given = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1])
            given = True
            i += 2
            continue
        if a is not None and a.startswith("--expression="):
            scripts.append(a.split("=", 1)[1])
            given = True
        elif a is not None and a.startswith("-e") and len(a) > 2:
            scripts.append(a[2:])
            given = True
        i += 1
    if not given:
        pos = positionals(args, SED_VALUE)
        if pos:
            scripts.append(pos[0])
    return scripts


def sed_runs_or_writes(args: Args) -> str | None:
    for script in sed_scripts(args):
        if script is None:
            return "a script computed at run time"
        for part in re.split(r"[;\n]", script):
            if SED_COMMAND.match(part):
                return part.strip()
            # s/a/b/w FILE or s/a/b/e: the s command's own w and e flags.
            p = part.strip()
            if p.startswith("s") and len(p) > 1:
                pieces = p.split(p[1])
                if len(pieces) >= 4 and re.search(r"[we]", pieces[-1]):
                    return p
    return None


def git_global(args: Args) -> str | None:
    """An option before git's sub-command that sets config or moves the repository."""
    for a in args:
        if a is None or not a.startswith("-"):
            return None  # the sub-command: global options end here
        if a in ("-c", "--git-dir", "--work-tree", "--exec-path", "--namespace") or a.startswith(
            ("--config-env", "--git-dir=", "--work-tree=", "--exec-path=", "-c")
        ):
            return a
    return None


def git_config_outside(args: Args) -> str | None:
    pos = positionals(args, frozenset(["-c", "-C", "--git-dir", "--work-tree"]))
    if pos[:1] != ["config"]:
        return None
    return flag("--global", "--system", "--file", "-f")(args)


RULES: tuple[ArgRule, ...] = (
    ArgRule(frozenset(["awk", "gawk", "mawk", "nawk"]), flag("-f", "--file"), Risk.ORANGE,
            "runs-program", "runs the awk program in a file", ("awk -f prog.awk data.txt",)),
    ArgRule(frozenset(["awk", "gawk", "mawk", "nawk"]), awk_program, Risk.ORANGE, "writes",
            "its program can run commands or write files",
            ("awk 'BEGIN{system(\"rm -rf src\")}'", "awk -v x=1 '{print > \"out\"}' f", "awk '{print | \"sh\"}' f")),
    ArgRule(frozenset(["sed"]), short_bundle("i", long=("--in-place",)), Risk.ORANGE, "writes",
            "edits files in place", ("sed -ni s/a/b/ f", "sed --in-place=.bak s/a/b/ f", "sed -Ei s/a/b/ f")),
    ArgRule(frozenset(["sed"]), flag("-f", "--file"), Risk.ORANGE, "runs-program",
            "runs a sed script from a file (which may write or run commands)", ("sed -f script.sed f",)),
    ArgRule(frozenset(["sed"]), sed_runs_or_writes, Risk.ORANGE, "writes",
            "its script reads, writes or runs (r, R, w, W, e)",
            ("sed -n '1r /etc/passwd' f", "sed --expression='w out' f", "sed 'e rm -rf src' f", "sed -n 's/a/b/w out' f")),
    ArgRule(frozenset(["sort"]), flag("--compress-program"), Risk.ORANGE, "runs-program",
            "runs a compression program", ("sort --compress-program=sh f",)),
    ArgRule(frozenset(["tar"]), flag("-I", "--use-compress-program", "--to-command", "--checkpoint-action",
                                     "--info-script", "--new-volume-script", "-F"), Risk.ORANGE, "runs-program",
            "runs a program of its own", ("tar -tf a.tar --use-compress-program=sh", "tar --to-command=sh -xf a.tar")),
    ArgRule(frozenset(["git"]), git_global, Risk.ORANGE, "git-config-override",
            "sets git config or moves the repository for this command (config can name programs to run)",
            ("git -c core.pager=sh log", "git --config-env=core.pager=X log", "git --git-dir=/tmp/x log")),
    ArgRule(frozenset(["git"]), flag("--output", "-O", "--open-files-in-pager", "--ext-diff", "--textconv"),
            Risk.ORANGE, "writes", "writes a file or runs an external program",
            ("git log --output=out.txt", "git diff --ext-diff", "git grep -Oless x")),
    ArgRule(frozenset(["git"]), git_config_outside, Risk.RED, "config-outside",
            "changes git configuration outside the workspace",
            ("git config --global user.name x", "git config --system core.pager sh")),
    ArgRule(frozenset(["env"]), flag("-S", "--split-string"), Risk.RED, "dynamic-code",
            "splits a string into a command line", ("env -S 'sh -c id'", "env --split-string='rm -rf src'")),
    ArgRule(frozenset(["man"]), flag("-P", "--pager", "-H", "--html", "-p", "--preprocessor"), Risk.ORANGE,
            "runs-program", "runs a pager, browser or preprocessor of its choosing", ("man -P sh ls",)),
    ArgRule(frozenset(["tree"]), flag("-o"), Risk.ORANGE, "writes", "writes its listing to a file",
            ("tree -o out.txt",)),
    ArgRule(frozenset(["xxd"]), both(flag("-r", "-revert"), more_positionals_than(1)), Risk.ORANGE, "writes",
            "writes the reverted bytes to a file", ("xxd -r hex.txt out.bin",)),
    ArgRule(frozenset(["uniq"]), more_positionals_than(1, frozenset(["-f", "-s", "-w"])), Risk.ORANGE, "writes",
            "writes its output file", ("uniq data.txt out.txt",)),
    ArgRule(frozenset(["iconv"]), flag("-o", "--output"), Risk.ORANGE, "writes", "writes its output file",
            ("iconv -f utf8 -t ascii -o out.txt data.txt",)),
    ArgRule(frozenset(["file"]), flag("-C", "--compile"), Risk.ORANGE, "writes", "writes a compiled magic file",
            ("file -C -m magic",)),
    ArgRule(frozenset(["date"]), flag("-s", "--set"), Risk.RED, "system-admin", "sets the system clock",
            ("date -s 2020-01-01",)),
    ArgRule(frozenset(["hostname"]), lambda args: flag("-F", "--file", "-b", "--boot")(args)
            or (str(positionals(args)[0]) if positionals(args) else None), Risk.RED, "system-admin",
            "sets the host name", ("hostname evil",)),
)  # fmt: skip

BY_COMMAND: dict[str, tuple[ArgRule, ...]] = {}
for _rule in RULES:
    for _name in _rule.commands:
        BY_COMMAND[_name] = (*BY_COMMAND.get(_name, ()), _rule)

# Variables that change what a command runs or loads: setting one makes the
# command more than a read, whatever it is.
RUN_CHANGING = re.compile(
    r"^(LD_\w*|PATH|GIT_\w*|LESSOPEN|LESSCLOSE|LESSKEY\w*|PAGER|MANPAGER|MANOPT|EDITOR|VISUAL|"
    r"BASH_ENV|ENV|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|IFS|PYTHON\w*|NODE_OPTIONS|NODE_PATH|"
    r"PERL5OPT|PERL5LIB|PERLLIB|RUBYOPT|RUBYLIB|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|TAR_OPTIONS|"
    r"GREP_OPTIONS|XDG_CONFIG_HOME|HOME)$"
)
RUN_CHANGING_EXAMPLES = ("LD_PRELOAD=/tmp/x.so ls", "PATH=/tmp:$PATH ls", "GIT_PAGER=sh git log",
                         "LESSOPEN='|sh %s' less f", "BASH_ENV=/tmp/x ls", "env LD_PRELOAD=x ls",
                         "PYTHONPATH=/tmp python3 -V", "export PAGER=sh; git log")  # fmt: skip


def check_examples(classify: Callable[[str], tuple[Risk, set[str]]]) -> None:
    """Every rule's examples hit it (``classify``: a command -> its level and rule ids)."""
    for rule in RULES:
        for example in rule.examples:
            risk, rules = classify(example)
            if risk < rule.risk or rule.rule not in rules:
                raise AssertionError(
                    f"argument rule {rule.rule!r} ({rule.reason}) does not catch its example {example!r}: {risk.label} {sorted(rules)}"
                )
    for example in RUN_CHANGING_EXAMPLES:
        risk, rules = classify(example)
        if risk < Risk.ORANGE or "runs-changed" not in rules:
            raise AssertionError(
                f"run-changing variables: {example!r} is {risk.label} {sorted(rules)}"
            )
