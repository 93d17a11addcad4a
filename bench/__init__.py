"""Speed measurements against the real stack; numbers, not pass/fail (see README)."""
