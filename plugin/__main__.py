"""Allow `python -m plugin` as another way to start the executable."""

from plugin.main import main

raise SystemExit(main())
