"""The package layout, found rather than listed.

The repository keeps four folders at its top; each installs as a package of
``polyconv`` (``backends/`` as ``polyconv.backends``, and so on).  Every
package below them is found here, at build time, so a new folder can never be
left out of the wheel.  Everything else about the distribution is in
``pyproject.toml``; ``tests/test_packaging.py`` checks a built wheel against
the tree.
"""

from setuptools import find_packages, setup

#: The installed package of each top-level folder of the repository.
FOLDERS = {
    "polyconv": "polyconv",
    "polyconv.backends": "backends",
    "polyconv.conformance": "conformance",
    "polyconv.bench": "bench",
}


def packages() -> list[str]:
    """Each mapped folder's package and every package (folder with an ``__init__.py``) below it."""
    found = []
    for package, folder in FOLDERS.items():
        found.append(package)
        found.extend(f"{package}.{sub}" for sub in find_packages(folder))
    return found


setup(package_dir=FOLDERS, packages=packages())
