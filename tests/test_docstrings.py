"""Every public name of the documented modules has a docstring.

Public names are a module's ``__all__`` (or its names without a leading
underscore), and the public methods and properties a public class defines
itself (an override may rely on the docstring of the method it overrides, as
``help()`` does). Constants (numbers, strings, dicts...) are documented in their module's
docstring or the API pages, so only modules, classes, functions, methods and
properties are checked here.

The examples (``>>>``) in those docstrings run as doctests.

``python tests/test_docstrings.py`` prints the coverage: how many names lack a
docstring, and how many have no "Example" section.
"""

import doctest
import importlib
import inspect
import sys

import pytest

MODULES = [
    "cnnx",
    "cnnx.functional",
    "cnnx.layers",
    "cnnx.models",
    "cnnx.optim",
    "cnnx.callbacks",
    "cnnx.onnx",
    "cnnx.losses",
    "cnnx.metrics",
    "cnnx.datasets",
]


def _public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return list(names)


def _documentable(obj):
    return inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)


def _own_doc(obj):
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return doc.strip() if isinstance(doc, str) else ""


def public_objects():
    """(qualified name, object) for every public documentable name, methods included."""
    seen = set()
    for modname in MODULES:
        module = importlib.import_module(modname)
        for name in _public_names(module):
            obj = getattr(module, name)
            if not _documentable(obj):
                continue
            qual = f"{modname}.{name}"
            home = f"{getattr(obj, '__module__', modname)}.{getattr(obj, '__qualname__', name)}"
            if inspect.ismodule(obj):
                home = obj.__name__
            if home in seen:  # a re-export (cnnx.Conv2D is cnnx.layers.Conv2D)
                continue
            seen.add(home)
            yield qual, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    if inspect.isfunction(value) or isinstance(value, property):
                        yield f"{qual}.{attr}", (value, _method_doc(obj, attr))


def _method_doc(cls, attr):
    """A method's docstring, or that of the base-class method it overrides
    (what ``inspect.getdoc`` and ``help()`` show)."""
    for klass in cls.__mro__:
        value = klass.__dict__.get(attr)
        if value is None:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if getattr(value, "__doc__", None):
            return value.__doc__
    return None


def _doc_of(item):
    if isinstance(item, tuple):
        return (item[1] or "").strip()
    return _own_doc(item)


def coverage():
    missing, no_example, total = [], [], 0
    for qual, item in public_objects():
        total += 1
        doc = _doc_of(item)
        if not doc:
            missing.append(qual)
        elif "Example" not in doc and ">>>" not in doc:
            no_example.append(qual)
    return total, missing, no_example


def test_every_public_name_has_a_docstring():
    pytest.importorskip("cnnx._core")
    total, missing, _ = coverage()
    assert total > 100, total  # the walk found the API, not an empty list
    assert not missing, f"{len(missing)} public names without a docstring: {missing}"


def docstring_examples():
    """doctest.DocTest of every example (``>>>``) in the public names' docstrings."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests, seen = [], set()
    modules = [importlib.import_module(m) for m in MODULES]
    objects = modules + [item for _, item in public_objects() if not isinstance(item, tuple)]
    for obj in objects:
        module = inspect.getmodule(obj)
        for t in finder.find(obj, module=module):  # globals: the module's, as doctest does
            if t.examples and t.name not in seen:
                seen.add(t.name)
                tests.append(t)
    return tests


def test_docstring_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("cnnx._core")
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = docstring_examples()
    assert len(tests) > 50, len(tests)
    failures = []
    for t in tests:
        out = []
        if runner.run(t, out=out.append).failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)


def test_the_check_can_fail():
    def undocumented():
        pass

    assert _doc_of(undocumented) == ""

    class Bare:
        pass

    assert _own_doc(Bare) == ""


if __name__ == "__main__":
    total, missing, no_example = coverage()
    top = [q for q, item in public_objects() if not isinstance(item, tuple)]
    print(
        f"{total} public names (methods included); {len(missing)} without a docstring; "
        f"{len(no_example)} with a docstring but no example"
    )
    print(
        f"of the {len(top)} module-level names: "
        f"{sum(q in no_example for q in top)} without an example"
    )
    for q in missing:
        print("  missing:", q)
    if "-v" in sys.argv:
        for q in no_example:
            print("  no example:", q)
