from __future__ import annotations

from ..options import Json


def backends(as_json: Json = False):
    """List the installed model backends (pluggy plugins in the `vmc` entry-point group)."""
    from ..output import emit_json
    from ..plugins import get_backends

    from ..tune_config import describe_defaults

    rows = [{"name": b.name, "description": b.description, "plugin": b.plugin, "tune_defaults": b.tune_defaults,
             "tuning": describe_defaults(b.tune_defaults)} for b in get_backends().values()]
    if as_json:
        emit_json({"backends": rows})
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}  [{r['plugin']}]; tuning: {r['tuning']}")
