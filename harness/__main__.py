# The cancel gate first, before the imports: a cancel in the first moments of `run` is noted, not fatal.
from harness.run.cancel import GATE

GATE.install()

from harness.cli import main  # noqa: E402

raise SystemExit(main())
