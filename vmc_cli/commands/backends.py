from __future__ import annotations

from vmc_cli.commands.options import Json


def backends(as_json: Json = False):
    """List the installed model backends (pluggy plugins in the `vmc` entry-point group), their tuning and
    generation defaults, and the settings each takes (`--option NAME=VALUE`, or the variable named)."""
    from vmc_cli.commands.output import emit_json
    from vmc_cli.models.plugins import get_backends

    from vmc_cli.method.tune_config import describe_defaults, describe_generate_defaults

    entries = get_backends().values()
    rows = [{"name": b.name, "description": b.description, "plugin": b.plugin, "tune_defaults": b.tune_defaults,
             "tuning": describe_defaults(b.tune_defaults), "generate_defaults": b.defaults,
             "generation": describe_generate_defaults(b.defaults), "options": [o.describe() for o in b.options]}
            for b in entries]
    if as_json:
        emit_json({"backends": rows})
        return
    width = max(len(r["name"]) for r in rows)
    for r, entry in zip(rows, entries):
        print(f"{r['name']:<{width}}  {r['description']}  [{r['plugin']}]; tuning: {r['tuning']}; "
              f"generation: {r['generation']}")
        for option in entry.options:  # its own options, given as --option NAME=VALUE
            print(f"{'':<{width}}  --option {option.usage()}")
