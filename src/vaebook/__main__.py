import sys

from vaebook.cli import main

sys.exit(main())
