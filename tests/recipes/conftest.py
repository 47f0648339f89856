"""One torch thread for the example runs: steady timings on a shared 2-core machine."""

