"""The CustomResourceDefinitions, shipped inside the package as ``bunko.crds``.

The YAML files beside this one are the source of the CRDs (``kubectl apply -f crds/`` ignores this
file); the operator reads them with ``importlib.resources`` wherever Bunko is installed, and
``scripts/sync-chart-crds.sh`` copies them into the chart.
"""
