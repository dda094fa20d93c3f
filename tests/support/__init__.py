"""Everything the tests share that is not a fixture: servers and processes they start, the
emulated cluster, the API client harness, helpers run in child processes. Fixtures are in the
``conftest.py`` files; what the benchmarks and scripts share with the tests (tiny models, free
ports, local servers) is ``bunko.testing``, which ships with the package."""
