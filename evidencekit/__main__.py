import os
import sys

# `python -m evidencekit` puts the working folder first on the import path, and that folder may
# be one being captured: every later import that looks there lists it, changing its access time
# (and a module of the same name among the evidence would be imported). It is not needed: the
# package was found already.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from evidencekit.cli.main import main

main()
