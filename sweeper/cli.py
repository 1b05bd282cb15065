"""`sweeper` command line: thin wrappers over :mod:`sweeper.api`."""

from __future__ import annotations

import sys

import click

from sweeper import api
from sweeper.errors import SweeperError


class _Group(click.Group):
    """Turn a SweeperError into one line on stderr and exit 1 (tracebacks with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SweeperError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Distributed sweeps of learning-dynamics kernels on Ray, stored in zarr."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("grid", type=click.Path(path_type=str))
@click.option(
    "--address", default=None, help="Join a Ray cluster: `auto` or HOST:PORT. Default: a private local Ray."
)
@click.option("--workers", type=int, default=None, help="Number of warm actors (0 = run in this process).")
@click.option(
    "--store", default=None, help="Store path (default: run.store of the grid, or results/NAME.zarr)."
)
@click.option("--block-size", type=int, default=None, help="Points per block (= zarr chunk) for a new store.")
@click.option(
    "--time-limit", type=float, default=None, help="Seconds one point may take before it is failed."
)
@click.option("--retry-failed", is_flag=True, help="Also rerun points that failed before.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store instead of resuming it.")
@click.option("--dry-run", is_flag=True, help="Print dims, points, blocks and store size, then exit.")
@click.option(
    "--estimate",
    is_flag=True,
    help="With --dry-run: estimate the wall time, from the store's finished points or 3 pilot points.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--verbose", is_flag=True, help="Show Ray's log lines and the workers' output.")
def submit(
    grid,
    address,
    workers,
    store,
    block_size,
    time_limit,
    retry_failed,
    overwrite,
    dry_run,
    estimate,
    quiet,
    verbose,
) -> None:
    """Run GRID (a grid.toml), computing only the points its store lacks."""
    api.refuse_volatile(grid, store)  # a `memory://` store would vanish with this command
    if estimate and not dry_run:
        raise SweeperError("--estimate goes with --dry-run: `sweeper submit GRID --dry-run --estimate`.")
    if dry_run:
        spec, template = api.prepare(
            grid, store=store, workers=workers, block_size=block_size, time_limit=time_limit
        )
        click.echo(api.describe_plan(spec, template, estimate=estimate))
        return
    spec, summary = api.sweep(
        grid,
        store=store,
        workers=workers,
        address=address,
        block_size=block_size,
        time_limit=time_limit,
        retry_failed=retry_failed,
        overwrite=overwrite,
        progress=not quiet,
        verbose=verbose,
    )
    click.echo(api.describe_summary(spec, summary))


@main.command()
@click.argument("store", type=click.Path(path_type=str))
def status(store: str) -> None:
    """Counts by status, failures with their messages, rate and ETA."""
    click.echo(api.describe_status(store))


@main.command()
@click.argument("store", type=click.Path(path_type=str))
@click.option("--dry-run", is_flag=True, help="Report damage, change nothing.")
def verify(store: str, dry_run: bool) -> None:
    """Read every chunk of STORE against its records; mark the points of damaged blocks pending.

    Exits 0 when the store is whole, 1 when it found damage (the next `submit` recomputes it).
    """
    damage = api.verify(store, repair=not dry_run)
    for line in damage.lines():
        click.echo(f"damaged: {line}")
    if not damage:
        click.echo(f"{store}: {damage.summary()}")
        return
    then = "nothing changed (--dry-run)" if dry_run else "marked pending; `sweeper submit` recomputes them"
    click.echo(f"{store}: {damage.summary()}; {then}")
    sys.exit(1)


@main.command()
@click.argument("store", type=click.Path(path_type=str))
def show(store: str) -> None:
    """The stored dataset: dims, variables, attrs."""
    import xarray as xr

    api.Store.open(store, mode="r")  # a clear error if it is not a store
    ds = xr.open_zarr(store)
    click.echo(ds)


@main.command()
@click.argument("theory", type=click.Path(path_type=str))
@click.argument("simulation", type=click.Path(path_type=str))
@click.option(
    "--select",
    "selections",
    multiple=True,
    metavar="DIM=VALUE",
    help="Compare at this value of a dim one store sweeps and the other lacks (e.g. `d=2000`); repeatable.",
)
@click.option(
    "--max-sigma", type=float, default=None, help="Exit 1 if any deviation exceeds this many sigma."
)
def compare(theory: str, simulation: str, selections: tuple[str, ...], max_sigma: float | None) -> None:
    """Theory against simulation, point by point: per output, the worst deviation and where."""
    from sweeper import comparison

    ds = comparison.compare(theory, simulation, select=comparison.parse_selections(selections))
    click.echo(comparison.describe(ds))
    if max_sigma is not None and comparison.worst_sigma(ds) > max_sigma:
        click.echo(f"deviation above {max_sigma:g} sigma", err=True)
        sys.exit(1)


@main.command()
def kernels() -> None:
    """Registered kernels with their parameters, defaults and outputs."""
    click.echo(api.describe_kernels())


if __name__ == "__main__":
    main()
