"""One release built by many runners: the CI matrix of shards, a shard's bake file, run and record, and the release step that merges them."""
