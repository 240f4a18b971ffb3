"""The README's gallery, written from figures/MANIFEST: each figure, what it shows, the command that remakes it.

    .venv/bin/python -m studio.workbench.readme          # rewrite the gallery in README.md
    .venv/bin/python -m studio.workbench.readme --check  # exit 1 if the gallery is stale

Only the text between `<!-- gallery:start -->` and `<!-- gallery:end -->` is touched; the rest of the
README is written by hand. Figures are grouped by notebook, in the MANIFEST's order; tables (kind
`table`) are data for other notebooks and are not shown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio import paths
from studio.repro import atomic_write_text

START = "<!-- gallery:start -->"
END = "<!-- gallery:end -->"


def _manifest() -> dict:
    from studio.workbench.runner import read_manifest

    return read_manifest()


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
            parts.append(f"![{alt}]({png})\n\n**{name}**: {caption}  \n"
                         f"Remake: `{remake_command(entry)}`" + (f" · {links}" if links else ""))
    return "\n\n".join(parts)


def render(text: str, manifest: dict) -> str:
    """`text` (a README) with the gallery between the markers replaced."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"README has no gallery markers: put {START} and {END} (in that order) "
                         "where the gallery goes")
    return text[:start + len(START)] + "\n" + gallery_markdown(manifest) + "\n" + text[end:]


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
    return text[start + len(START):end] if 0 <= start < end else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.workbench.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the gallery is out of date")
    args = parser.parse_args(argv)
    changed = update_readme(check=args.check)
    if args.check:
        print("README gallery: " + ("out of date (python -m studio.workbench.readme)" if changed else "up to date"))
        return 1 if changed else 0
    print("README gallery: " + ("rewritten" if changed else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
