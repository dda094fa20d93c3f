"""The CustomResourceDefinitions, shipped inside the package as ``bunko.crds``.

The YAML files beside this one are generated from the typed specs in ``bunko.operator.kinds``
(``make crds`` writes them here and into ``charts/bunko/crds/``; a test fails when either differs
from what the classes say). ``kubectl apply -f crds/`` ignores this file.
"""
