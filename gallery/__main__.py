"""``python -m gallery NAME... [--small]``: make the talks' figures (``list`` names them)."""

from __future__ import annotations

import json
import sys

import click

from gallery.figure import RESULTS, figures, make
from sweeper.errors import SweeperError


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--small", is_flag=True, help="The reduced grids of experiments/gallery/small/.")
@click.option("--results", default=str(RESULTS), show_default=True, help="Folder of the stores.")
@click.option("--out", default=None, help="Folder of the PNGs and numbers (default: the results folder).")
@click.option("--workers", type=int, default=None, help="Workers per grid (default: one per CPU).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def main(names, small, results, out, workers, quiet):
    """Make the figures NAMES (or `all`); `list` prints the figures."""
    known = figures()
    if names == ("list",):
        for name, figure in known.items():
            click.echo(f"{name:24s} {figure.title}")
        return
    chosen = list(known) if names == ("all",) else list(names)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise click.UsageError(f"no figure {unknown[0]!r}; the figures are: {', '.join(known)}")
    for name in chosen:
        try:
            made = make(
                known[name], small=small, results=results, out=out, workers=workers, progress=not quiet
            )
        except SweeperError as exc:
            click.echo(f"gallery {name}: {exc}", err=True)
            sys.exit(1)
        total = sum(made.seconds.values())
        click.echo(f"{made.png}  ({total:.0f} s)  {json.dumps(made.numbers, default=str)[:300]}")


if __name__ == "__main__":
    main()
