import sys

from taskmanager.entrypoint import main

sys.exit(main())
