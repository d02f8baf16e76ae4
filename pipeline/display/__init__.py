"""What the pages show of a job: stage bars, advice, the comparison in words, charts."""
