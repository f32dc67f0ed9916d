"""`python -m evals.suites`: regenerate the bundled suite files from their specs."""

from evals.suites import main

main()
