"""What the tests share: helpers to set up sales, processes and services (not shipped in the wheel)."""
