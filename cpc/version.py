"""The library version, from the installed package's metadata."""

from importlib import metadata

try:
    __version__ = metadata.version("cpc")
except metadata.PackageNotFoundError:  # a checkout used without installing
    __version__ = "unknown"
