from __future__ import annotations

from ..options import Json


def backends(as_json: Json = False):
    """List the installed model backends (pluggy plugins in the `vmc` entry-point group)."""
    from ..output import emit_json
    from ..plugins import get_backends

    rows = [{"name": b.name, "description": b.description, "plugin": b.plugin} for b in get_backends().values()]
    if as_json:
        emit_json({"backends": rows})
        return
    for r in rows:
        print(f"{r['name']:<10} {r['description']}  [{r['plugin']}]")
