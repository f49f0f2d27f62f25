"""The DMS presets that ship inside the package (``--dms euro-ncap-2023``, ``--preset eu-addw``).

A package (not a bare folder) so that setup.py's ``package_data`` installs its ``*.yaml`` with every
wheel; :func:`edgepose.dms.config.resolve_preset_path` finds them through importlib.resources.
``configs/dms`` in the source tree is a symlink to this folder, kept for older commands and docs.
"""
