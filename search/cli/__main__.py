"""``python -m vitsearch.search.cli``: what torchrun and the subprocess tests run."""

from .app import main

main()
