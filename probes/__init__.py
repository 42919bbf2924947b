"""Probe suites as data: one TOML file per suite (see README.md beside this file).

Installed as the package `rys.probes` so an installed rys finds them."""
