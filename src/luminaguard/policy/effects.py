"""The effect classifier: a level from what a preview observed. Pure."""

from __future__ import annotations

from luminaguard.core.effects import Effects
from luminaguard.core.risk import Assessment, Reason, Risk, strictest
from luminaguard.policy.hostfiles import classify_host_files


def classify_effects(effects: Effects, *, timed_out: bool = False) -> Assessment:
    """GREEN for nothing, YELLOW for only new files, ORANGE for changes and
    deletions, RED for network attempts, links or writes leaving the workspace,
    and anything that could not be observed."""
    reasons: list[tuple[Risk, Reason]] = []
    if effects.network:
        hosts = sorted({str(a.get("host") or a.get("evidence")) for a in effects.network})
        reasons.append(
            (Risk.RED, Reason("effect-network", f"tried to reach the network ({', '.join(hosts)})"))
        )
    outside = [s["path"] for s in effects.symlinks if s.get("outside")]
    if outside:
        reasons.append(
            (
                Risk.RED,
                Reason(
                    "effect-link-outside",
                    f"creates links out of the workspace: {', '.join(outside)}",
                ),
            )
        )
    touched = [
        *effects.created,
        *effects.created_dirs,
        *(m.path for m in effects.modified),
        *effects.deleted,
        *(c["path"] for c in effects.mode_changes),
        *(s["path"] for s in effects.symlinks),
    ]
    host = classify_host_files("the command", touched)
    if host is not None:
        reasons.append((Risk.RED, host.reasons[0]))
    for note in effects.unobserved:
        reasons.append((Risk.RED, Reason("effect-unobserved", note)))
    if timed_out:
        reasons.append(
            (
                Risk.RED,
                Reason("effect-timeout", "the preview timed out, so its effects are incomplete"),
            )
        )
    if effects.modified or effects.deleted or effects.mode_changes:
        n = len(effects.modified) + len(effects.deleted) + len(effects.mode_changes)
        reasons.append(
            (Risk.ORANGE, Reason("effect-changes", f"changes or deletes {n} existing path(s)"))
        )
    if effects.created or effects.created_dirs or effects.symlinks:
        n = len(effects.created) + len(effects.created_dirs) + len(effects.symlinks)
        reasons.append(
            (Risk.YELLOW, Reason("effect-creates", f"creates {n} new path(s) in the workspace"))
        )
    if not reasons:
        return Assessment.of(Risk.GREEN, "effect-none", "changed nothing")
    return strictest(Assessment(risk, (reason,)) for risk, reason in reasons)
