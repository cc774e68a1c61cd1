"""``python3 -m cdp_preflight``: the same as ``cdp-preflight`` (colcon installs scripts off PATH)."""

from .cli import main

raise SystemExit(main())
