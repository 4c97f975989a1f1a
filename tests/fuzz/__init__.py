"""fuzz tests (a package so their module names do not clash with the top-level ones)."""
