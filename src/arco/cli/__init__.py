"""The ``arco`` command line: one module per command group, all entered through :func:`arco.cli.main.main`.

The CLI only parses options, loads settings and calls into the layers below; the processes it starts live in
:mod:`arco.worker`.
"""
