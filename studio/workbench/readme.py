"""The README's findings and gallery, written from figures/MANIFEST.

    .venv/bin/python -m studio.workbench.readme          # rewrite both sections in README.md
    .venv/bin/python -m studio.workbench.readme --check  # exit 1 if either is stale

Findings (between `<!-- findings:start -->` and `<!-- findings:end -->`): every study's verdict table
(kind `verdicts`, written by studio.verdicts.save_verdicts) as one markdown table per study, so a reader
sees what the workbench found without opening a notebook. Gallery (between `<!-- gallery:start -->`
and `<!-- gallery:end -->`): each figure, what it shows, the command that remakes it, grouped by
notebook. Tables of kind `table` are data for other notebooks and are not shown. The rest of the README
is written by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio import paths
from studio.repro import atomic_write_text

START = "<!-- gallery:start -->"
END = "<!-- gallery:end -->"
FINDINGS_START = "<!-- findings:start -->"
FINDINGS_END = "<!-- findings:end -->"


def _manifest() -> dict:
    from studio.workbench.manifest import read_manifest

    return read_manifest()


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def findings_markdown(manifest: dict) -> str:
    """The findings section's body: a tally line per study and one in all ("N claims; R reproduced, X not
    reproduced, I inconclusive, U untestable"), each study's claims, then the pipeline checks (rows of
    kind `sanity`: true by construction of the generator, never counted as findings)."""
    import pandas as pd

    from studio.verdicts import CLAIM, SANITY, tally

    tables = sorted((e.get("notebook", "?"), name, e) for name, e in manifest.items() if e.get("kind") == "verdicts")
    if not tables:
        return "_No verdicts yet: `make figures` computes them._"
    studies, every, checks = [], [], []
    for notebook, name, entry in tables:
        csv = _file(name, entry, "csv")
        if csv is None or not (paths.ROOT / csv).is_file():
            continue
        table = pd.read_csv(paths.ROOT / csv)
        column = "outcome" if "outcome" in table.columns else "verdict"  # tables from before the four outcomes
        kind = table["kind"] if "kind" in table.columns else pd.Series(CLAIM, index=table.index)
        claims, sanity = table[kind != SANITY], table[kind == SANITY]
        every += list(claims[column])
        study = Path(notebook).stem
        rows = "\n".join(
            f"| {_cell(r.claim)} | {_cell(r.paper)} | **{getattr(r, column)}** | {_cell(r.evidence)} |"
            for r in claims.itertuples()
        )
        studies.append(
            (
                f"- **{study}**: {tally(claims[column])}",
                f"**{study}** ({tally(claims[column])}; [`{csv}`]({csv}), profile "
                f"{entry.get('profile') or 'default'})\n\n| claim | paper | outcome | evidence |\n"
                f"|---|---|---|---|\n{rows}",
            )
        )
        checks += [
            f"| {study} | {_cell(r.claim)} | **{getattr(r, column)}** | {_cell(r.evidence)} |"
            for r in sanity.itertuples()
        ]
    summary = f"**In all: {tally(every)}.**\n\n" + "\n".join(line for line, _ in studies)
    parts = [summary, *(body for _, body in studies)]
    if checks:
        parts.append(
            "#### Pipeline checks\n\nResults true by construction of the generators: they test the data and the "
            "pipeline, not a paper's claim, and are not counted above.\n\n| study | check | outcome | evidence |\n"
            "|---|---|---|---|\n" + "\n".join(checks)
        )
    return "\n\n".join(parts)


def figures_by_notebook(manifest: dict) -> dict[str, list[tuple[str, dict]]]:
    """{notebook path: [(figure name, entry), ...]} for entries of kind figure, notebooks sorted."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for name, entry in manifest.items():
        if entry.get("kind", "figure") != "figure":
            continue
        groups.setdefault(entry.get("notebook", "?"), []).append((name, entry))
    return {nb: sorted(groups[nb]) for nb in sorted(groups)}


def remake_command(entry: dict) -> str:
    """The command that regenerates a figure: its notebook under the profile that made it."""
    notebook = Path(entry.get("notebook", "?")).stem
    profile = entry.get("profile") or "default"
    extra = "" if profile == "default" else f" --profile {profile}"
    return f"studio figures --only {notebook}{extra}"


def _file(name: str, entry: dict, ext: str) -> str | None:
    for f in entry.get("files", []):
        if f.endswith("." + ext):
            return f
    return None


def gallery_markdown(manifest: dict) -> str:
    """The gallery section's body (without the markers)."""
    groups = figures_by_notebook(manifest)
    if not groups:
        return "_No figures yet: `make figures` makes them._"
    parts = []
    for notebook, entries in groups.items():
        parts.append(f"### {Path(notebook).stem}\n\nFrom [`{notebook}`]({notebook}).")
        for name, entry in entries:
            caption = " ".join((entry.get("caption") or "").split()) or name
            caption += "" if caption.endswith((".", "!", "?")) else "."
            alt = caption.replace("[", "(").replace("]", ")")
            png = _file(name, entry, "png") or f"{paths.relative(paths.FIGURES)}/{name}.png"
            links = " · ".join(f"[{ext.upper()}]({f})" for ext in ("pdf", "csv") if (f := _file(name, entry, ext)))
            parts.append(
                f"![{alt}]({png})\n\n**{name}**: {caption}  \n"
                f"Remake: `{remake_command(entry)}`" + (f" · {links}" if links else "")
            )
    return "\n\n".join(parts)


def _replace(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.find(start_marker), text.find(end_marker)
    return text[: start + len(start_marker)] + "\n" + body + "\n" + text[end:]


def render(text: str, manifest: dict) -> str:
    """`text` (a README) with the gallery (and the findings, where it has their markers) replaced."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README has no gallery markers: put {START} and {END} (in that order) where the gallery goes")
    text = _replace(text, START, END, gallery_markdown(manifest))
    if 0 <= text.find(FINDINGS_START) < text.find(FINDINGS_END):
        text = _replace(text, FINDINGS_START, FINDINGS_END, findings_markdown(manifest))
    return text


def update_readme(readme: str | Path | None = None, manifest: dict | None = None, *, check: bool = False) -> bool:
    """Rewrite the gallery of `readme` from the MANIFEST; return True if it changed (or, with check,
    would change). Nothing outside the markers is touched."""
    readme = Path(readme) if readme is not None else paths.README
    manifest = _manifest() if manifest is None else manifest
    text = readme.read_text()
    new = render(text, manifest)
    if new != text and not check:
        atomic_write_text(readme, new)
    return new != text


def gallery_section(text: str) -> str:
    """The text between the markers of a README (empty if there are none)."""
    start, end = text.find(START), text.find(END)
    return text[start + len(START) : end] if 0 <= start < end else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.workbench.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the gallery is out of date")
    args = parser.parse_args(argv)
    changed = update_readme(check=args.check)
    if args.check:
        print(
            "README gallery and findings: "
            + ("out of date (python -m studio.workbench.readme)" if changed else "up to date")
        )
        return 1 if changed else 0
    print("README gallery and findings: " + ("rewritten" if changed else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
