"""The static classifier for shell commands, on a real shell parser.

The command is parsed with tree-sitter-bash; every simple command anywhere in
it (pipelines, lists, subshells, command and process substitutions, loops,
functions, heredoc pipelines) is classified on its own, and the strictest
level wins. Pure: the only thing it reads is the workspace, to resolve paths
(symlinks included) and to tell a new file from an existing one.

What it cannot know it does not guess down: a command it does not recognise
is ORANGE, an argument computed at run time makes a path-taking command
ORANGE, and text it cannot parse is RED.
"""

from __future__ import annotations

import codecs
import functools
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from luminaguard.core.risk import Assessment, Reason, Risk, strictest
from luminaguard.policy import argrules as A
from luminaguard.policy import commands as C

if TYPE_CHECKING:
    from luminaguard.core.paths import WorkspaceView

Node = Any  # tree_sitter.Node; typed loosely to keep the import lazy

SCOPES = frozenset(
    [
        "program",
        "list",
        "pipeline",
        "subshell",
        "compound_statement",
        "if_statement",
        "elif_clause",
        "else_clause",
        "while_statement",
        "for_statement",
        "c_style_for_statement",
        "case_statement",
        "case_item",
        "do_group",
        "function_definition",
        "negated_command",
        "redirected_statement",
    ]
)


@functools.cache
def _parser() -> Any:
    import tree_sitter as ts
    import tree_sitter_bash as tsb

    return ts.Parser(ts.Language(tsb.language()))


@dataclass
class _Word:
    """An argument: its text when known before the command runs, else None."""

    text: str | None
    raw: str


@dataclass
class _Classifier:
    ws: WorkspaceView | None
    found: list[tuple[Risk, Reason]] = field(default_factory=list)
    depth: int = 0

    def add(self, risk: Risk, rule: str, text: str) -> None:
        self.found.append((risk, Reason(rule, text)))

    def assessment(self) -> Assessment:
        return strictest(Assessment(risk, (reason,)) for risk, reason in self.found)

    # --- walking the tree -------------------------------------------------

    def visit(self, node: Node, piped: bool = False) -> None:
        t = node.type
        if t == "ERROR" or node.is_missing:
            self.add(
                Risk.RED,
                "unparseable",
                "the command could not be parsed, so it cannot be classified",
            )
            return
        if t == "pipeline":
            stages = [c for c in node.named_children if c.type not in ("|", "|&")]
            for i, stage in enumerate(stages):
                self.visit(stage, piped=piped or i > 0)
            return
        if t == "command":
            self.command(node, piped)
            return
        if t == "redirected_statement":
            body = node.child_by_field_name("body")
            if body is not None:
                self.visit(body, piped)
            for child in node.named_children:
                if child is not body:
                    self.redirect(child)
            return
        if t in ("variable_assignment", "variable_assignments", "declaration_command"):
            self.substitutions(node)
            self.assignments(node)
            return
        if t in ("unset_command", "test_command"):
            self.substitutions(node)
            return
        if t in ("command_substitution", "process_substitution"):
            for child in node.named_children:
                self.visit(child)
            return
        if t == "for_statement":
            for child in node.named_children:
                if child.type == "do_group":
                    self.visit(child)
                else:
                    self.substitutions(child)
            return
        if t in SCOPES or t.endswith("_statement") or t == "program":
            for child in node.named_children:
                if (
                    child.type in ("heredoc_body", "comment", "variable_name", "word")
                    and t != "program"
                ):
                    self.substitutions(child)
                    continue
                self.visit(child, piped if t in ("subshell", "compound_statement") else False)
            return
        # Anything else (words, strings, arithmetic): only what it runs matters.
        self.substitutions(node)

    def substitutions(self, node: Node) -> None:
        """Classify every command and process substitution inside ``node``."""
        for sub in _descendants(node, ("command_substitution", "process_substitution")):
            self.visit(sub)

    def redirect(self, node: Node) -> None:
        t = node.type
        if t == "heredoc_redirect":
            for child in node.named_children:
                if child.type == "pipeline" or child.type == "command" or child.type == "list":
                    # `cmd <<EOF | next`: the pipeline hangs off the heredoc.
                    self.visit(child, piped=True)
                else:
                    self.substitutions(child)
            return
        if t == "herestring_redirect":
            self.substitutions(node)
            return
        if t != "file_redirect":
            self.substitutions(node)
            return
        op = next((c.type for c in node.children if not c.is_named), "")
        dest = node.child_by_field_name("destination")
        if dest is None:
            return
        self.substitutions(dest)
        if op in (">&", "<&", "&>-") and dest.type == "number":
            return  # fd duplication like 2>&1
        word = _word(dest)
        if op.startswith("<") and op not in ("<>",):
            self.path_arg("redirect", word, reading=True)
        else:
            self.write_target("redirect", word, append=op.endswith(">>"))

    # --- one simple command -----------------------------------------------

    def assignments(self, node: Node) -> None:
        """Variables that change what runs (``LD_PRELOAD``, ``PATH``, ``GIT_*``, …)."""
        for child in [node, *_descendants(node, ("variable_assignment",))]:
            if child.type != "variable_assignment":
                continue
            name = child.child_by_field_name("name")
            if name is not None:
                self.run_changing((name.text or b"").decode("utf-8", "replace"))

    def run_changing(self, variable: str) -> None:
        if A.RUN_CHANGING.match(variable):
            self.add(
                Risk.ORANGE,
                "runs-changed",
                f"setting {variable} changes which program runs or what it loads",
            )

    def command(self, node: Node, piped: bool) -> None:
        self.substitutions(node)
        self.assignments(node)
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return  # only assignments
        name = _word(name_node)
        args = [_word(c) for c in node.children_by_field_name("argument")]
        for child in node.named_children:
            if (
                child.type == "file_redirect"
                or child.type == "heredoc_redirect"
                or child.type == "herestring_redirect"
            ):
                self.redirect(child)
        if name.text is None:
            self.add(
                Risk.RED,
                "dynamic-command",
                f"the command name {name.raw!r} is computed at run time",
            )
            return
        self.simple(name.text, args, piped)

    def simple(self, name: str, args: list[_Word], piped: bool) -> None:
        base = name
        if "/" in name:
            # Judged by what it resolves to: /usr/bin/../../workspace/ls is not ls.
            real = posixpath.normpath(name)
            if real.startswith(("/usr/bin/", "/bin/", "/usr/local/bin/", "/usr/sbin/", "/sbin/")):
                base = posixpath.basename(real)
            else:
                self.path_arg("program", _Word(name, name), reading=True)
                self.add(Risk.ORANGE, "runs-program", f"runs the program {name}")
                return
        values = [a.text for a in args]
        positional = [a for a in args if a.text is None or not a.text.startswith("-")]
        for rule in A.BY_COMMAND.get(base, ()):
            hit = rule.match(values)
            if hit is not None:
                self.add(rule.risk, rule.rule, f"{base} ({hit}) {rule.reason}")
        if base in C.WRAPPERS:
            self.wrapper(base, args, piped)
            return
        for commands, reason, what in C.ALWAYS_RED:
            if base in commands:
                self.add(Risk.RED, reason, f"{base} {what}")
                return
        if base in C.DYNAMIC:
            self.dynamic(base, args)
            return
        if base == "git":
            self.git(args)
            return
        if base in ("pip", "pip3") or base in C.PACKAGE_INSTALLS:
            self.package_tool("pip" if base == "pip3" else base, args)
            return
        if base in C.SHELLS or base in C.INTERPRETERS or base.startswith("python"):
            self.interpreter(base, args, piped)
            return
        if base in C.RUNS_PROJECT_CODE:
            checks = C.CHECK_ONLY_FLAGS.get(base)
            if checks and any(v in checks for v in values if v):
                self.paths(base, positional, reading=True)
                self.add(Risk.GREEN, "check-only", f"{base} only checks")
            else:
                self.paths(base, positional, reading=True)
                self.add(
                    Risk.ORANGE,
                    "runs-project-code",
                    f"{base} runs or builds project code and may change files",
                )
            return
        if base in C.READ_ONLY:
            self.read_only(base, args, positional)
            return
        if base in C.FILE_WRITERS:
            self.file_writer(base, args, positional)
            return
        self.paths(base, positional, reading=True)
        self.add(
            Risk.ORANGE,
            "unknown-command",
            f"{base} is not a command LuminaGuard knows, so it is not trusted as read-only",
        )

    def wrapper(self, base: str, args: list[_Word], piped: bool) -> None:
        rest = list(args)
        skip = C.WRAPPER_ARGS.get(base, 0)
        while (
            rest
            and rest[0].text is not None
            and (rest[0].text.startswith("-") or "=" in rest[0].text)
        ):
            popped = rest.pop(0).text or ""
            if base == "env" and "=" in popped and not popped.startswith("-"):
                self.run_changing(popped.split("=", 1)[0])
        rest = rest[skip:]
        if not rest:
            self.add(Risk.GREEN, "read-only", f"{base} with no command only prints")
            return
        if base == "xargs":
            self.add(
                Risk.ORANGE, "xargs", "xargs runs a command with arguments only known at run time"
            )
        head = rest[0]
        if head.text is None:
            self.add(Risk.RED, "dynamic-command", f"{base} runs a command computed at run time")
            return
        self.simple(head.text, rest[1:], piped)

    def dynamic(self, base: str, args: list[_Word]) -> None:
        if base == "eval":
            if any(a.text is None for a in args):
                self.add(Risk.RED, "dynamic-code", "eval of text computed at run time")
                return
            self.add(Risk.ORANGE, "dynamic-code", "eval runs text as a command")
            self.nested(" ".join(a.text or "" for a in args))
            return
        self.add(Risk.ORANGE, "source", f"{base} runs a script in the current shell")
        if args:
            self.path_arg(base, args[0], reading=True)

    def nested(self, script: str) -> None:
        if self.depth > 4:
            self.add(Risk.RED, "too-deep", "commands nested too deeply to classify")
            return
        root = _parser().parse(script.encode("utf-8")).root_node
        if too_complex(root):
            self.add(Risk.RED, "too-complex", "nested commands too complex to classify")
            return
        inner = _Classifier(self.ws, depth=self.depth + 1)
        inner.visit(root)
        self.found.extend(inner.found)

    def interpreter(self, base: str, args: list[_Word], piped: bool) -> None:
        values = [a.text for a in args]
        if base in C.SHELLS:
            if "-c" in values:
                i = values.index("-c")
                code = args[i + 1] if i + 1 < len(args) else None
                if code is None or code.text is None:
                    self.add(
                        Risk.RED, "dynamic-code", f"{base} -c with a script computed at run time"
                    )
                    return
                self.nested(code.text)
                return
            self.script_or_input(base, args, piped, shell=True)
            return
        flags = C.INTERPRETERS.get(base, ("-c",))
        if values and all(v in ("--version", "-V", "-v", "--help", "-h") for v in values):
            self.add(Risk.GREEN, "version", f"{base} only prints its version or help")
            return
        for i, v in enumerate(values):
            if v in flags:
                code = args[i + 1] if i + 1 < len(args) else None
                text = code.text if code else None
                if text is None:
                    self.add(
                        Risk.RED, "dynamic-code", f"{base} runs inline code computed at run time"
                    )
                elif any(h in text for h in C.INLINE_NETWORK_HINTS):
                    self.add(
                        Risk.RED,
                        "inline-network",
                        f"{base} inline code that may reach the network or start programs",
                    )
                else:
                    self.add(Risk.ORANGE, "inline-code", f"{base} runs inline code")
                return
            if v == "-m" and base.startswith("python"):
                module = values[i + 1] if i + 1 < len(values) else None
                if module in ("pip", "ensurepip") and any(
                    x in ("install", "uninstall", "download") for x in values
                ):
                    self.add(Risk.RED, "package-install", "pip installs packages over the network")
                elif module in ("http.server", "smtpd", "ftplib", "webbrowser"):
                    self.add(Risk.RED, "network", f"python -m {module} uses the network")
                else:
                    self.add(Risk.ORANGE, "runs-module", f"python -m {module} runs code")
                return
        self.script_or_input(base, args, piped, shell=False)

    def script_or_input(self, base: str, args: list[_Word], piped: bool, shell: bool) -> None:
        """A shell or interpreter that runs the first non-flag argument, or else its input."""
        scripts = [a for a in args if a.text is None or not a.text.startswith("-")]
        if scripts:
            self.paths(base, scripts[:1], reading=True)
            self.add(
                Risk.ORANGE, "runs-script", f"{base} runs a {'script' if shell else 'program'}"
            )
        elif piped:
            rule, what = ("pipe-to-shell", "commands") if shell else ("pipe-to-interpreter", "code")
            self.add(Risk.RED, rule, f"data piped into {base} runs as {what}")
        elif shell:
            self.add(Risk.ORANGE, "shell", f"{base} reads commands from its input")
        else:
            self.add(Risk.ORANGE, "interpreter", f"{base} runs code from its input")

    def git(self, args: list[_Word]) -> None:
        rest = list(args)
        while rest and rest[0].text is not None and rest[0].text.startswith("-"):
            flag = rest.pop(0).text
            if flag in ("-C", "-c", "--git-dir", "--work-tree") and rest:
                value = rest.pop(0)
                if flag != "-c":
                    self.path_arg("git", value, reading=False)
        if not rest:
            self.add(Risk.GREEN, "read-only", "git with no sub-command only prints help")
            return
        sub = rest[0].text
        opts = [a.text for a in rest[1:]]
        if sub is None:
            self.add(Risk.RED, "dynamic-command", "git sub-command computed at run time")
            return
        if (
            sub in C.GIT_REMOTE
            or (sub == "remote" and opts[:1] in (["update"], ["show"], ["prune"]))
            or (sub == "submodule" and any(o in ("update", "add", "sync") for o in opts))
        ):
            self.add(Risk.RED, "git-remote", f"git {sub} talks to a remote")
            return
        read = sub in C.GIT_READ
        if sub == "branch":
            read = all(
                o is not None and o.startswith("-") and o not in C.GIT_BRANCH_WRITE_FLAGS
                for o in opts
            )
        elif sub == "tag":
            read = not opts or all(
                o in ("-l", "--list", "-n") or (o or "").startswith("-n") for o in opts
            )
        elif sub == "remote":
            read = not opts or opts[:1] in (["-v"], ["--verbose"], ["get-url"])
        elif sub == "stash":
            read = opts[:1] in (["list"], ["show"])
        elif sub == "config":
            read = any(o in ("--get", "--get-all", "--list", "-l", "--get-regexp") for o in opts)
        elif sub == "worktree":
            read = opts[:1] == ["list"]
        if read:
            self.add(Risk.GREEN, "git-read", f"git {sub} only reads the repository")
        else:
            self.add(
                Risk.ORANGE, "git-write", f"git {sub} changes the repository or the working tree"
            )

    def package_tool(self, base: str, args: list[_Word]) -> None:
        positional = [a.text for a in args if a.text is None or not a.text.startswith("-")]
        flags = [a.text for a in args if a.text is not None and a.text.startswith("-")]
        sub = positional[0] if positional else (flags[0] if flags else None)
        if sub is None:
            self.add(Risk.GREEN, "read-only", f"{base} with no sub-command prints help")
        elif sub in C.PACKAGE_READS.get(base, frozenset()):
            self.add(Risk.GREEN, "package-read", f"{base} {sub} only reads")
        elif sub in C.PACKAGE_INSTALLS.get(base, frozenset()):
            self.add(
                Risk.RED,
                "package-install",
                f"{base} {sub} installs or fetches packages over the network",
            )
        else:
            self.add(Risk.ORANGE, "runs-project-code", f"{base} {sub} runs project code")

    def read_only(self, base: str, args: list[_Word], positional: list[_Word]) -> None:
        values = [a.text or "" for a in args]
        writes = C.WRITE_FLAGS.get(base, ())
        hit = [
            v
            for v in values
            if v in writes
            or any(
                v.startswith(w + "=")
                or (
                    w.startswith("-")
                    and not w.startswith("--")
                    and len(w) == 2
                    and v.startswith(w)
                    and len(v) > 2
                    and base in ("sed",)
                )
                for w in writes
            )
        ]
        if (
            base in ("awk", "gawk", "mawk", "nawk")
            and positional
            and positional[0].text
            and any(k in positional[0].text for k in ("system(", ">", "|", "getline"))
        ):
            hit.append("program")
        if base == "sed" and positional and positional[0].text and _sed_writes(positional[0].text):
            hit.append("w/e command")
        if base == "cd":
            if positional:
                self.path_arg("cd", positional[0], reading=True)
            self.add(Risk.GREEN, "read-only", "cd changes the directory of this shell only")
            return
        if base in C.TEXT_ARGS:
            self.add(Risk.GREEN, "read-only", f"{base} only prints")
            return
        paths = positional[1:] if base in C.PATTERN_FIRST else positional
        if base == "find":
            paths = (
                [a for a in positional if a.text is None or not a.text.startswith(("(", "!", ")"))][
                    :1
                ]
                if positional
                else []
            )
        self.paths(base, paths, reading=True)
        if hit:
            self.add(Risk.ORANGE, "writes", f"{base} {hit[0]} changes files")
            if base == "find" and any(v in ("-exec", "-execdir", "-ok", "-okdir") for v in values):
                i = next(
                    i for i, v in enumerate(values) if v in ("-exec", "-execdir", "-ok", "-okdir")
                )
                inner = [a for a in args[i + 1 :] if a.text not in (";", "+", "\\;")]
                if inner and inner[0].text:
                    self.simple(inner[0].text, inner[1:], False)
            return
        self.add(Risk.GREEN, "read-only", f"{base} only reads")

    def file_writer(self, base: str, args: list[_Word], positional: list[_Word]) -> None:
        for a in positional:
            if a.text is None:
                self.add(
                    Risk.ORANGE,
                    "dynamic-path",
                    f"{base} acts on {a.raw}, which is computed at run time",
                )
        targets = [a for a in positional if a.text is not None]
        outside = [a for a in targets if self.outside(a.text or "")]
        self.paths(base, positional, reading=False)
        if outside:
            return
        if base == "tar":
            flags = "".join(v.text or "" for v in args[:1])
            if "t" in flags and "x" not in flags and "c" not in flags:
                self.add(Risk.GREEN, "read-only", "tar t only lists")
                return
        if base in C.DESTRUCTIVE:
            self.add(Risk.ORANGE, "changes-files", f"{base} changes or removes existing files")
            return
        if base in C.CREATES_ONLY:
            self.add(Risk.YELLOW, "creates", f"{base} creates new paths")
            return
        if base in ("cp", "ln", "install") and targets:
            dest = targets[-1].text or ""
            self.write_target(base, targets[-1], append=False, what=f"{base} writes {dest}")
            return
        if base in ("touch", "tee"):
            for t in targets:
                self.write_target(base, t, append=base == "tee")
            if not targets:
                self.add(Risk.GREEN, "read-only", f"{base} with no file only copies its input")
            return
        self.add(Risk.ORANGE, "changes-files", f"{base} changes files")

    # --- paths ------------------------------------------------------------

    def outside(self, text: str) -> bool:
        return self._where(text) in ("outside", "credential")

    def _where(self, text: str) -> str:
        if text.startswith("~") or text.startswith("$HOME") or text.startswith("${HOME}"):
            return "credential" if _credential(text) else "outside"
        if "=" in text and text.startswith("-"):
            text = text.split("=", 1)[1]
        if text.startswith("/"):
            # Normalise first: "/tmp/../etc/x" is /etc/x, not a /tmp path.
            text = posixpath.normpath(text)
        if _credential(text):
            return "credential"
        if (
            text.startswith(C.HARMLESS_PATHS)
            or text in C.SANDBOX_PRIVATE
            or text.startswith(C.SANDBOX_PRIVATE[0])
        ):
            return "harmless"
        if text.startswith("/") and not (text == "/workspace" or text.startswith("/workspace/")):
            return "outside"
        normal = posixpath.normpath(
            text.removeprefix("/workspace/").removeprefix("/workspace") or "."
        )
        if normal == ".." or normal.startswith("../"):
            return "outside"
        if posixpath.basename(normal) == ".env" and normal.startswith(".."):
            return "credential"
        if self.ws is not None and not self.ws.is_inside(normal):
            return "outside"  # through a symlink in the workspace
        return "inside"

    def path_arg(self, who: str, word: _Word, *, reading: bool) -> None:
        if word.text is None:
            if word.raw.startswith(("~", "$HOME", "${HOME}")):
                self.add(
                    Risk.RED, "path-outside", f"{who} uses {word.raw}, a path outside the workspace"
                )
            else:
                # Even a read: where it reads is only known at run time.
                self.add(
                    Risk.ORANGE,
                    "dynamic-path",
                    f"{who} uses {word.raw}, which is computed at run time",
                )
            return
        where = self._where(word.text)
        if where == "credential":
            self.add(Risk.RED, "credentials", f"{who} touches {word.text}, a credential store")
        elif where == "outside":
            self.add(Risk.RED, "path-outside", f"{who} uses {word.text}, outside the workspace")

    def paths(self, who: str, words: list[_Word], *, reading: bool) -> None:
        for w in words:
            self.path_arg(who, w, reading=reading)

    def write_target(self, who: str, word: _Word, *, append: bool, what: str | None = None) -> None:
        if word.text is None:
            self.add(
                Risk.ORANGE,
                "dynamic-path",
                f"{who} writes to {word.raw}, which is computed at run time",
            )
            if word.raw.startswith(("~", "$HOME", "${HOME}")):
                self.add(
                    Risk.RED, "path-outside", f"{who} writes to {word.raw}, outside the workspace"
                )
            return
        where = self._where(word.text)
        if where == "harmless":
            return
        if where == "credential":
            self.add(Risk.RED, "credentials", f"{who} writes to {word.text}, a credential store")
            return
        if where == "outside":
            self.add(
                Risk.RED, "path-outside", f"{who} writes to {word.text}, outside the workspace"
            )
            return
        rel = posixpath.normpath(word.text.removeprefix("/workspace/") or ".")
        exists = self.ws.exists(rel) if self.ws is not None else True
        if exists:
            self.add(
                Risk.ORANGE,
                "overwrite",
                what or f"{who} {'appends to' if append else 'overwrites'} existing {word.text}",
            )
        else:
            self.add(Risk.YELLOW, "new-file", what or f"{who} creates {word.text}")


def _credential(text: str) -> bool:
    t = text.replace("${HOME}", "~").replace("$HOME", "~")
    return any(
        t == p or t.startswith(p + "/") or (t.startswith(p) and p.endswith("sock"))
        for p in C.CREDENTIAL_PATTERNS
    )


def _sed_writes(script: str) -> bool:
    for part in script.replace("\n", ";").split(";"):
        p = part.strip()
        # s/a/b/w file, or a bare `w file` / `e cmd` command.
        if p.startswith(("w ", "W ", "e ", "e")) and len(p) > 1 and p[1] in " \t":
            return True
        if p.startswith("s") and len(p) > 1:
            sep = p[1]
            pieces = p.split(sep)
            if len(pieces) >= 4 and any(c in pieces[-1] for c in ("w", "e")):
                return True
    return False


def _descendants(node: Node, types: tuple[str, ...]) -> Iterator[Node]:
    for child in node.named_children:
        if child.type in types:
            yield child
        else:
            yield from _descendants(child, types)


def _word(node: Node) -> _Word:
    raw = node.text.decode("utf-8", "replace")
    return _Word(_static(node), raw)


def _static(node: Node) -> str | None:
    """The value of a word if it is known before the command runs."""
    t = node.type
    if t in ("command_name",):
        return _static(node.named_children[0]) if node.named_children else None
    if t in ("word", "number"):
        text = node.text.decode("utf-8", "replace")
        out, escape = [], False
        for ch in text:
            if escape:
                out.append(ch)
                escape = False
            elif ch == "\\":
                escape = True
            else:
                out.append(ch)
        return "".join(out)
    if t == "raw_string":
        return str(node.text.decode("utf-8", "replace"))[1:-1]
    if t == "ansi_c_string":
        inner = node.text.decode("utf-8", "replace")[2:-1]
        try:
            return codecs.decode(inner, "unicode_escape")
        except UnicodeDecodeError:
            return None
    if t == "string":
        parts = []
        for child in node.named_children:
            if child.type != "string_content":
                return None
            parts.append(child.text.decode("utf-8", "replace"))
        text = "".join(parts)
        for esc in ('\\"', "\\\\", "\\$", "\\`"):
            text = text.replace(esc, esc[1])
        return text
    if t == "concatenation":
        pieces = [_static(c) for c in node.named_children]
        if any(p is None for p in pieces):
            return None
        return "".join(p for p in pieces if p is not None)
    return None


MAX_DEPTH = 150
MAX_NODES = 50_000


def too_complex(root: Node) -> bool:
    """Whether the syntax tree is deeper or larger than the classifier will walk
    (it recurses: 2,000 `&&` or 300 nested `$( )` would exhaust the stack).
    Measured with an explicit stack, so measuring cannot overflow."""
    stack = [(root, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH or seen > MAX_NODES:
            return True
        stack.extend((child, depth + 1) for child in node.children)
    return False


def simple_commands(command: str) -> list[str] | None:
    """The text of every simple command in ``command``, those inside command
    substitutions included; None when it cannot be parsed (or is too complex),
    so that nothing is taken to match it."""
    tree = _parser().parse(command.encode("utf-8"))
    if tree.root_node.has_error or too_complex(tree.root_node):
        return None
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "command":
            found.append((node.text or b"").decode("utf-8", "replace"))
        stack.extend(reversed(node.children))
    return found


def classify_path(
    who: str, path: str, ws: WorkspaceView | None, *, reading: bool
) -> Assessment | None:
    """The level of a path argument of ``who`` (a file tool), or None when the
    path itself adds nothing (inside the workspace, no credential)."""
    probe = _Classifier(ws)
    probe.path_arg(who, _Word(path, path), reading=reading)
    return probe.assessment() if probe.found else None


ASSIGNING_EXPANSION = re.compile(r"\$\{[^}]*?(?::?=)")
_examples_checked = False


def classify_shell(command: str, ws: WorkspaceView | None = None) -> Assessment:
    """The static level of ``command``, run with ``ws`` as the working directory."""
    global _examples_checked
    if not _examples_checked:
        _examples_checked = True
        A.check_examples(_rules_of)
    return _classify(command, ws)


def _rules_of(command: str) -> tuple[Risk, set[str]]:
    a = _classify(command, None)
    return a.risk, {r.rule for r in a.reasons}


def _classify(command: str, ws: WorkspaceView | None) -> Assessment:
    if not command.strip():
        return Assessment.of(Risk.GREEN, "empty", "an empty command does nothing")
    tree = _parser().parse(command.encode("utf-8"))
    if too_complex(tree.root_node):
        return Assessment.of(
            Risk.RED,
            "too-complex",
            f"the command is nested more than {MAX_DEPTH} levels deep or has more than "
            f"{MAX_NODES} parts, too complex to classify",
        )
    c = _Classifier(ws)
    if ASSIGNING_EXPANSION.search(command):
        c.add(Risk.ORANGE, "assigns", "a ${x:=...} expansion assigns while it expands")
    if tree.root_node.has_error:
        c.add(
            Risk.RED, "unparseable", "the command could not be parsed, so it cannot be classified"
        )
    c.visit(tree.root_node)
    if not c.found:
        return Assessment.of(Risk.GREEN, "no-commands", "only assignments or comments")
    return c.assessment()
