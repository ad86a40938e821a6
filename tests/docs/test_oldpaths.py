"""The module paths of tiffio 0.1.0 that moved into packages still import, warn once, and give the
same objects as the new paths (one release of grace)."""

import importlib
import subprocess
import sys
import textwrap

import pytest

from tiffio._oldpaths import RENAMED


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_old_path_imports_warns_once_and_is_the_new_module(old):
    """Each old path, in a fresh interpreter: ``import`` warns once (DeprecationWarning naming the new
    path), a second import does not, and the module is the new one (same functions, same classes)."""
    new = RENAMED[old]
    code = textwrap.dedent(f"""
        import importlib, warnings
        import tiffio
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = importlib.import_module({old!r})
            again = importlib.import_module({old!r})
            attr = getattr(tiffio, {old.split('.', 1)[1]!r})
        new = importlib.import_module({new!r})
        assert old is new and again is new and attr is new, (old, new)
        assert new.__name__ == {new!r} and new.__spec__.name == {new!r}
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert len(deprecations) == 1, [str(w.message) for w in caught]
        assert {new!r} in str(deprecations[0].message)
        names = [n for n in vars(new) if not n.startswith("__")]
        exec("from {old} import " + ", ".join(names))
        assert all(eval(n) is getattr(new, n) for n in names)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_old_attribute_access_warns():
    """``tiffio.reader`` as an attribute (no import statement) is the new module, with a warning."""
    import tiffio

    sys.modules.pop("tiffio.reader", None)
    vars(tiffio).pop("reader", None)
    with pytest.warns(DeprecationWarning, match=r"tiffio\.read\.file"):
        module = tiffio.reader
    assert module is importlib.import_module("tiffio.read.file")
    assert module.TiffFile is tiffio.TiffFile


def test_unknown_attribute_is_still_an_attribute_error():
    import tiffio

    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        tiffio.no_such_module  # noqa: B018
