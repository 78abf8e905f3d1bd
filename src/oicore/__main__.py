import sys

from oicore.cli import main

sys.exit(main())
