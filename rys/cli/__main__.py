"""`python -m rys.cli`: the `rys` command without the installed script."""

from . import main

main()
