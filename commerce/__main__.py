"""`python -m commerce worker`: see commerce/worker.py."""

from commerce.worker import main

main()
