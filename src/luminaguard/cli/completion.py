"""`luminaguard completion bash|zsh|fish`: shell completion, read from the parser.

The script is generated from the argument parser itself, so every command,
action, option and choice it offers is one the parser accepts. Load it with
``eval "$(luminaguard completion bash)"`` (zsh: the same with ``zsh``; fish:
``luminaguard completion fish | source``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from luminaguard.cli.common import EXIT_OK

SHELLS = ("bash", "zsh", "fish")


def add_completion(sub: Any) -> None:
    """completion: a shell completion script."""
    completion = sub.add_parser(
        "completion", help='a shell completion script: eval "$(luminaguard completion bash)"'
    )
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(handler=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    from luminaguard.cli import build_parser

    tree = walk(build_parser())
    sys.stdout.write(fish(tree) if args.shell == "fish" else bash(tree, zsh=args.shell == "zsh"))
    return EXIT_OK


class Node:
    """One command level: its sub-commands, its options, which take a value, their choices."""

    def __init__(self) -> None:
        self.commands: dict[str, Node] = {}
        self.options: list[str] = []
        self.valued: list[str] = []
        self.choices: dict[str, list[str]] = {}
        self.positional_choices: list[str] = []


def walk(parser: argparse.ArgumentParser) -> Node:
    node = Node()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                node.commands[name] = walk(child)
        elif action.option_strings:
            node.options += action.option_strings
            if action.nargs != 0:
                node.valued += action.option_strings
                if action.choices:
                    for opt in action.option_strings:
                        node.choices[opt] = [str(c) for c in action.choices]
        elif action.choices:
            node.positional_choices += [str(c) for c in action.choices]
    return node


def _paths(node: Node, path: str = "_") -> list[tuple[str, Node]]:
    out = [(path, node)]
    for name, child in node.commands.items():
        out += _paths(child, f"{path}/{name}")
    return out


def bash(tree: Node, *, zsh: bool = False) -> str:
    words, valued, choices = [], [], []
    for path, node in _paths(tree):
        offered = [*node.commands, *node.positional_choices, *node.options]
        words.append(f'    ["{path}"]="{" ".join(offered)}"')
        if node.valued:
            valued.append(f'    ["{path}"]=" {" ".join(node.valued)} "')
        for opt, values in node.choices.items():
            choices.append(f'    ["{path} {opt}"]="{" ".join(values)}"')
    head = "autoload -U +X bashcompinit && bashcompinit\n" if zsh else ""
    return f"""# luminaguard completion ({"zsh" if zsh else "bash"}): eval "$(luminaguard completion {"zsh" if zsh else "bash"})"
{head}typeset -gA _luminaguard_words=(
{chr(10).join(words)}
)
typeset -gA _luminaguard_valued=(
{chr(10).join(valued)}
)
typeset -gA _luminaguard_choices=(
{chr(10).join(choices)}
)
_luminaguard() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} path=_ w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        [[ $w == -* ]] && continue
        [[ -n ${{_luminaguard_words["$path/$w"]+set}} ]] && path="$path/$w"
    done
    if [[ -n ${{_luminaguard_choices["$path $prev"]+set}} ]]; then
        COMPREPLY=($(compgen -W "${{_luminaguard_choices["$path $prev"]}}" -- "$cur"))
    elif [[ ${{_luminaguard_valued["$path"]}} == *" $prev "* ]]; then
        COMPREPLY=()  # the option's value: files, by default
    else
        COMPREPLY=($(compgen -W "${{_luminaguard_words["$path"]}}" -- "$cur"))
    fi
}}
complete -o default -F _luminaguard luminaguard
"""


def fish(tree: Node) -> str:
    lines = ["# luminaguard completion (fish): luminaguard completion fish | source"]
    lines.append("complete -c luminaguard -f")
    for path, node in _paths(tree):
        names = path.split("/")[1:]
        if names:
            seen = " ".join(f"; and __fish_seen_subcommand_from {n}" for n in names)
            condition = f"-n 'true{seen}'"
        else:
            condition = "-n '__fish_use_subcommand'"
        for name in node.commands:
            lines.append(f"complete -c luminaguard {condition} -a {name}")
        for value in node.positional_choices:
            lines.append(f"complete -c luminaguard {condition} -a {value}")
        for opt in node.options:
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            extra = ""
            if opt in node.choices:
                extra = f" -x -a '{' '.join(node.choices[opt])}'"
            elif opt in node.valued:
                extra = " -r -F"
            lines.append(f"complete -c luminaguard {condition} {flag}{extra}")
    return "\n".join(lines) + "\n"
