"""The operator's custom resources as typed specs, one module per kind (KubeRay's ``*_types.go``).

Each spec is parsed once, by :func:`bunko.operator.schemas.parse`, and handed to the planner and
the renderer as is. The CRD YAML in ``crds/`` is generated from these classes
(``make crds``; a test fails when the committed files differ), so a default, a bound or a CEL rule
is written once, here.
"""
