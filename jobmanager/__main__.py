import sys

from jobmanager.entrypoint import main

sys.exit(main())
