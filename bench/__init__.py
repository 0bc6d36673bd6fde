"""Research code: benchmarks of the product (theme quality, sentiment, speed, memory, faults, fuzzing, load).

Not shipped: the wheel (``[tool.setuptools.packages.find]``) and the Docker image (``.dockerignore``) leave it out,
and the product never imports it. One entry point, ``python -m bench <command>`` (``python -m bench --help`` lists
the commands). The labelled data sets are read from ``../shared/data`` (``FEEDBACK_THEMES_BENCH_DATA`` overrides);
results go to docs/benchmarks.md.
"""
