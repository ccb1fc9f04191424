"""``python -m pipelines.cli``: the ``loanstress`` command."""

from pipelines.cli.main import main

main()
