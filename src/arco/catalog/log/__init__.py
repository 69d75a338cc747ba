"""The commit log both tiers share: scope-rooted object layout, manifests and the CAS'd pointer, keyed datasets.

* :mod:`arco.catalog.log.layout`: where every object of a scope lives (validated keys only);
* :mod:`arco.catalog.log.manifest`: what a commit log stores (pointer, manifests, data-file entries) and its formats;
* :mod:`arco.catalog.log.commit`: the commit protocol (immutable files, one manifest per commit, one pointer);
* :mod:`arco.catalog.log.keyed`: keyed datasets (upserts and tombstones merged LSM-style) on a commit log.
"""
