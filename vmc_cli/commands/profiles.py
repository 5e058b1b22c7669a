from __future__ import annotations

from typing import Annotated, Optional

import typer

from vmc_cli.commands.options import Home, Json

app = typer.Typer(help="List, show and remove learned motions (profiles).", no_args_is_help=True)


def _summary(store, name: str) -> dict:
    """One row of ``profiles list``; a profile whose manifest is missing or unreadable is a
    row with ``damaged`` set to the reason (and None elsewhere) instead of an error."""
    from vmc_cli.errors import VmcError

    try:
        m = store.manifest(name)
        damaged = None
    except VmcError as exc:
        m, damaged = {}, exc.message
    return {
        "name": name,
        "backend": m.get("backend", {}).get("name"),
        "prompt": m.get("prompt", {}).get("original"),
        "tuning_prompt": m.get("prompt", {}).get("tuning"),
        "steps": m.get("tuning", {}).get("steps"),
        "loss": m.get("loss", {}).get("mean_last_10"),
        "inverted": "inversion" in m,
        "imported": m.get("imported", {}).get("layout"),
        "created": m.get("created"),
        "path": str(store.path(name)),
        "damaged": damaged,
    }


@app.command("list")
def list_(home: Home = None, as_json: Json = False):
    """List the profiles in the store (damaged ones too, marked: remove them with `vmc profiles rm`)."""
    from vmc_cli.commands.output import emit_json
    from vmc_cli.store.profiles import ProfileStore

    from vmc_cli.store.checkpoints import unfinished

    store = ProfileStore(home)
    rows = [_summary(store, n) for n in store.names()]
    pending = unfinished(store.home)
    if as_json:
        emit_json({"home": str(store.home), "profiles": rows, "unfinished": pending})
        return
    if pending:
        from vmc_cli.commands.output import info

        live = [u for u in pending if not u["damaged"]]
        if live:
            steps = ", ".join(f"{u['name']} (step {u['step']} of {u['steps']})" for u in live)
            info(f"unfinished tunes: {steps}; continue one with the same `vmc tune ...` command and --resume, "
                 "or remove them with `vmc profiles clean --yes`")
        for u in pending:
            if u["damaged"]:
                info(f"damaged unfinished tune: {u['name']} ({u['damaged']}); it cannot be resumed: remove it "
                     f"with `vmc profiles clean {u['name']} --yes`")
    if not rows:
        from vmc_cli.commands.output import info

        info(f"no profiles yet in {store.root}; make one with `vmc tune CLIP --prompt ...`")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None)
    for col in ("name", "backend", "tuning prompt", "steps", "loss", "inverted", "created"):
        table.add_column(col)
    for r in rows:
        if r["damaged"]:
            table.add_row(escape(r["name"]), "DAMAGED", escape(r["damaged"]), "-", "-", "-", "-")
            continue
        loss = f"{r['loss']:.4f}" if isinstance(r["loss"], float) else "-"
        steps = str(r["steps"]) if r["steps"] is not None else ("imported" if r["imported"] else "-")
        table.add_row(escape(r["name"]), escape(str(r["backend"])), escape(str(r["tuning_prompt"])),
                      steps, loss, "yes" if r["inverted"] else "no", str(r["created"]))
    Console().print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Profile name.")], home: Home = None, as_json: Json = False):
    """Show a profile's manifest (what was tuned, from what, with which settings)."""
    from vmc_cli.commands.output import emit_json
    from vmc_cli.store.profiles import ProfileStore

    store = ProfileStore(home)
    if as_json:
        emit_json(store.manifest(name))  # unknown, unreadable or damaged -> one clear error
    else:  # the file as written, read once (and checked like the JSON one)
        text = store.manifest_path(name).read_text(encoding="utf-8", errors="replace")
        store.manifest(name, text)
        print(text, end="")


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Really remove (no question is asked).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed.")] = False,
    home: Home = None,
    as_json: Json = False,
):
    """Remove a profile (needs --yes; profiles are expensive to remake)."""
    from vmc_cli.errors import VmcError
    from vmc_cli.commands.output import emit_json
    from vmc_cli.store.profiles import ProfileStore

    store = ProfileStore(home)
    path = store.path(name)
    if not path.is_dir():  # only the folder is needed: a damaged profile must stay removable
        store.manifest_path(name)  # raises the usual "no profile named" error
    if dry_run or not yes:
        if not dry_run:
            raise VmcError(f"not removing {name!r} without --yes", f"run `vmc profiles rm {name} --yes`")
        result = {"name": name, "path": str(path), "removed": False}
    else:
        store.remove(name)
        result = {"name": name, "path": str(path), "removed": True}
    if as_json:
        emit_json(result)
    else:
        print(f"{'removed' if result['removed'] else 'would remove'} {path}")


@app.command("clean")
def clean(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Profile names whose unfinished tunes to remove (default: all).", show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Really remove (no question is asked).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed.")] = False,
    home: Home = None,
    as_json: Json = False,
):
    """Remove the checkpoints of unfinished tunes (see `vmc profiles list`); a tune running now is left alone."""
    import shutil

    from vmc_cli.store.checkpoints import unfinished
    from vmc_cli.errors import VmcError
    from vmc_cli.commands.output import emit_json, info
    from vmc_cli.store.profiles import ProfileStore, StoreBusy

    store = ProfileStore(home)
    pending = unfinished(store.home)
    if names:
        known = {u["name"] for u in pending}
        missing = [n for n in names if n not in known]
        if missing:
            raise VmcError(f"no unfinished tune named {missing[0]!r}",
                           f"unfinished now: {', '.join(sorted(known)) or 'none'}")
        pending = [u for u in pending if u["name"] in names]
    if not dry_run and not yes:
        raise VmcError(f"not removing {len(pending)} unfinished tune(s) without --yes",
                       "run `vmc profiles clean --yes`, or --dry-run to see them")
    rows = []
    for u in pending:
        row = {"name": u["name"], "path": u["path"], "step": u["step"], "damaged": u["damaged"], "removed": False,
               "busy": False}
        if not dry_run:
            try:
                with store.lock(u["name"]):
                    shutil.rmtree(u["path"])
                row["removed"] = True
            except StoreBusy:
                row["busy"] = True
        rows.append(row)
    if as_json:
        emit_json({"unfinished": rows})
        return
    if not rows:
        info("no unfinished tunes")
    for r in rows:
        verb = "removed" if r["removed"] else "left alone (being tuned right now)" if r["busy"] else "would remove"
        state = f"damaged: {r['damaged']}" if r["damaged"] else f"step {r['step']}"
        print(f"{verb} {r['path']} ({r['name']}, {state})")


@app.command("path")
def path(home: Home = None, as_json: Json = False):
    """Print the folder that holds the profiles."""
    from vmc_cli.commands.output import emit_json
    from vmc_cli.store.profiles import ProfileStore

    store = ProfileStore(home)
    if as_json:
        emit_json({"home": str(store.home), "profiles": str(store.root)})
    else:
        print(store.root)
