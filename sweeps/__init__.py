"""Sweep presets: one TOML file of `rys sweep` options per preset (see README.md beside this file).

Installed as the package `rys.sweeps` so `rys sweep --preset NAME` finds them.
A sweep run from a preset writes its results to sweeps/NAME/ (git-ignored)."""
