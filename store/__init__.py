"""The blake3 content-addressed blob store, action cache and GC roots."""
