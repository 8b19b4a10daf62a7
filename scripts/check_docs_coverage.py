"""After `mkdocs build`: every public name of the documented modules has an
entry (an HTML anchor) in the built API reference.

Public names are read statically with griffe (each module's ``__all__``), so
the compiled extension is not needed. Exit status 1 lists the names missing.

    python scripts/check_docs_coverage.py [site_dir]
"""

import os
import re
import sys

import griffe

MODULES = {
    "cnnx": "api/cnnx",
    "cnnx.functional": "api/functional",
    "cnnx.layers": "api/layers",
    "cnnx.models": "api/models",
    "cnnx.optim": "api/optim",
    "cnnx.callbacks": "api/callbacks",
    "cnnx.onnx": "api/onnx",
    "cnnx.losses": "api/losses",
    "cnnx.metrics": "api/metrics",
    "cnnx.datasets": "api/datasets",
}
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def main(site):
    package = griffe.load(
        "cnnx", search_paths=[os.path.join(ROOT, "python")], allow_inspection=False
    )
    anchors = set()
    for page in MODULES.values():
        with open(os.path.join(site, page, "index.html")) as f:
            anchors |= set(re.findall(r'id="(cnnx[\w.]*)"', f.read()))
    missing, total = [], 0
    for modname in MODULES:
        module = package if modname == "cnnx" else package[modname[len("cnnx.") :]]
        for name in module.exports or []:
            name = str(name)
            total += 1
            member = module[name]
            targets = {f"{modname}.{name}"}
            if member.is_alias:  # a re-export is documented where it is defined
                path = member.target_path
                targets |= {
                    path,
                    re.sub(r"\._[\w]+", "", path),
                    re.sub(r"\.(?:[a-z_]+)\.(?=[A-Z])", ".", path),
                }
            if member.is_module:
                targets.add(member.path)
                if f"api/{name}" in MODULES.values() or member.path in MODULES:
                    continue
            targets -= set(MODULES)  # a module's own heading is no entry for a name in it
            if not targets & anchors:
                missing.append(f"{modname}.{name}")
    print(f"{total} public names in __all__; {total - len(missing)} with an API entry")
    if missing:
        print("without an entry in the API reference:\n  " + "\n  ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "site")))
