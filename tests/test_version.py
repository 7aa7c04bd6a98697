"""``largekernel3d.__version__`` comes from the package metadata (``pyproject.toml`` is its only source)."""

import re
from importlib import metadata
from pathlib import Path

import largekernel3d

SRC = Path(largekernel3d.__file__).resolve().parent


def test_version_is_the_installed_distributions():
    assert largekernel3d.__version__ == metadata.version("largekernel3d")
    assert re.fullmatch(r"\d+(\.\d+)*([abc]|rc|\.post|\.dev|\+)?[\w.+]*", largekernel3d.__version__)


def test_a_source_tree_that_is_not_installed_says_unknown(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert largekernel3d._installed_version() == largekernel3d.UNKNOWN_VERSION == "0+unknown"


def test_no_module_hard_codes_a_version():
    literal = re.compile(r"""^\s*(__version__|VERSION|version)\s*[:=][^=\n]*["']\d+\.\d+""", re.M)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if literal.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
