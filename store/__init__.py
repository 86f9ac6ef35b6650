"""The blake3 content-addressed blob store, action cache, GC roots and GC.

Layout under the store root (``<mirror>/store``)::

    objects/ab/<blake3 hex>   immutable blobs, mode 0444      (store.objects)
    actions/ab/log            a build's action entries, appended (store.actions)
    actions/ab/<key hex>      action entries written durably, JSON
    traces/ab                 each node's last run, appended   (store.traces)
    roots/<name>              GC roots: "blake3:<hex>" of a manifest (store.roots)
    tmp/                      in-flight writes; stale ones are removed by gc (store.gc)
    lock                      build (shared) / gc (exclusive) lock (store.lock)

This package imports nothing from ``morgan`` or ``rules``.
"""
