"""Everything that reads or writes samples: shards, audio/video/image pipelines, labels, toy data."""
