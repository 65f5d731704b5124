"""mfff: multi-fidelity training of machine-learned force fields."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `mfff.load(...)` and `mfff.save(...)` without importing torch when only the version is asked for
    if name in ("load", "save"):
        from mfff.inference import files

        return getattr(files, name)
    raise AttributeError(f"module 'mfff' has no attribute {name!r}")
